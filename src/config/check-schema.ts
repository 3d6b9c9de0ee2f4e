// Schema step: ajv over the loaded value; every error becomes a positioned diagnostic.
// The schema comes from the composition root (gatewaySchema(FEATURES) in src/build/compile.ts).
import { createHash } from 'node:crypto';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { precompiledSchemaKey, precompiledValidator } from './schema-validator.ts';
import type { PositionIndex } from './load.ts';
import type { Diagnostic, SourcePos } from '../model/types.ts';
import type { JsonSchema } from '../core/feature.ts';

/** ajv settings of the schema step (scripts/build-cli.mjs generates the CLI's validator with them). */
export const AJV_OPTIONS = { allErrors: true, strict: false, allowUnionTypes: true } as const;

// The bundled CLI carries the validator ajv generated from gatewaySchema(FEATURES) when the
// CLI was built (scripts/build-cli.mjs substitutes ./schema-validator.ts), so a start-up
// does not pay for compiling the schema; it is used for the schema it was generated from
// only (same key). Otherwise ajv compiles the schema on first use, without the two costly
// extras: checking the schema against the JSON Schema meta-schema (done in
// tests/unit/cli-startup.test.ts) and ajv's code optimizer (smaller code, same results).
const compiled = new WeakMap<JsonSchema, ValidateFunction>();

/** what identifies a schema for the precompiled validator: sha256 of its JSON */
export const schemaKey = (schema: JsonSchema): string => createHash('sha256').update(JSON.stringify(schema)).digest('hex');

function validator(schema: JsonSchema): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v =
      precompiledValidator && precompiledSchemaKey === schemaKey(schema)
        ? (precompiledValidator as ValidateFunction)
        : new Ajv2020({ ...AJV_OPTIONS, validateSchema: false, code: { optimize: false } }).compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/** /routes/2/upstream → routes[2].upstream */
export function pointerToPath(pointer: string): string {
  if (!pointer) return '';
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
}

function describe(e: ErrorObject): { path: string; message: string; useKey: boolean } {
  const p = pointerToPath(e.instancePath);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = String(params.additionalProperty);
      return { path: p ? `${p}.${extra}` : extra, message: `unknown key "${extra}"`, useKey: true };
    }
    case 'required':
      return { path: p, message: `missing required key "${params.missingProperty}"`, useKey: false };
    case 'pattern':
      return { path: p, message: `invalid value (must match ${params.pattern})`, useKey: false };
    case 'enum':
      return { path: p, message: `must be one of: ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`, useKey: false };
    case 'const':
      return { path: p, message: `must be ${JSON.stringify(params.allowedValue)}`, useKey: false };
    case 'propertyNames':
      return { path: p, message: `invalid name "${params.propertyName}" (lowercase letters, digits, - and _, starting with a letter)`, useKey: false };
    default:
      return { path: p, message: e.message ?? e.keyword, useKey: false };
  }
}

export function checkSchema(value: unknown, positions: PositionIndex, file: string, schema: JsonSchema): Diagnostic[] {
  const validate = validator(schema);
  if (validate(value)) return [];
  const errors = validate.errors ?? [];
  // oneOf produces a cascade (each branch's error + "must match exactly one schema");
  // keep the branch errors that are most specific, drop the generic summary where a
  // more specific error exists at or below the same path.
  const described = errors
    .filter((e) => e.keyword !== 'if')
    .map((e) => ({ e, d: describe(e) }));
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  const oneOfPaths = new Set(described.filter((x) => x.e.keyword === 'oneOf').map((x) => x.d.path));
  for (const { e, d } of described) {
    if (e.keyword === 'oneOf') {
      // only report the summary when no branch explained it
      const explained = described.some((x) => x.e.keyword !== 'oneOf' && x.e.keyword !== 'type' && x.e.keyword !== 'const' && x.e.keyword !== 'enum' && x.d.path.startsWith(d.path));
      if (explained) continue;
      d.message = 'has the wrong shape (see the documented forms)';
    } else if (oneOfPaths.has(d.path) && (e.keyword === 'type' || e.keyword === 'const' || e.keyword === 'enum') && /oneOf/.test(e.schemaPath)) {
      continue; // branch mismatch noise
    }
    const key = `${d.path}|${d.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const at: SourcePos =
      (d.useKey ? positions.key.get(d.path) : positions.value.get(d.path)) ??
      positions.value.get(d.path) ??
      nearest(positions, d.path) ?? { file, line: 1, col: 1, path: d.path };
    out.push({ code: 'GW201', severity: 'error', message: d.message, at: { ...at, path: d.path } });
  }
  return out;
}

function nearest(positions: PositionIndex, p: string): SourcePos | undefined {
  let cur = p;
  while (cur) {
    const hit = positions.value.get(cur);
    if (hit) return hit;
    const cut = Math.max(cur.lastIndexOf('.'), cur.lastIndexOf('['));
    if (cut <= 0) break;
    cur = cur.slice(0, cut);
  }
  return undefined;
}
