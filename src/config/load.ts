// Load step: the only part of the pipeline (besides write) that touches the disk.
// Parses gateway.yaml keeping positions, follows `include:`, interpolates ${VAR}, and
// returns a plain JS value plus an index from key path (routes[2].upstream) to position.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, Parser, type Node as YamlNode, type YAMLError } from 'yaml';
import type { Diagnostic, SourcePos } from '../model/types.ts';
import { fastParse, type FastNode } from './fast-yaml.ts';

export interface PositionIndex {
  /** position of the value at a path */
  value: Map<string, SourcePos>;
  /** position of the key at a path (for unknown-key errors) */
  key: Map<string, SourcePos>;
}

export interface LoadedConfig {
  file: string;
  baseDir: string;
  value: Record<string, unknown> | null;
  positions: PositionIndex;
  hash: string;
  diagnostics: Diagnostic[];
  files: string[]; // every file read (main + includes), for messages and watch
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** text to use instead of reading the main file (tests, stdin) */
  text?: string;
}

/**
 * Input bounds, checked before anything is parsed so memory stays proportional to them. A
 * real gateway.yaml with a thousand routes is about 300 KB; one value longer than 64 KiB
 * cannot reach nginx anyway (its parameters end at 4 KiB).
 */
export const LIMITS = {
  /** one file: gateway.yaml or an included file */
  fileBytes: 1024 * 1024,
  /** gateway.yaml plus every included file */
  totalBytes: 2 * 1024 * 1024,
  /** one scalar (key or value), after ${VAR} interpolation */
  scalarBytes: 64 * 1024,
};

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1).replace(/\.0$/, '')} KiB`;
  return `${n} bytes`;
}

/**
 * Read a text file of at most `limit` bytes. The size is checked on the open descriptor
 * before any byte is read, so an oversized file costs no memory; 'too-large' carries it.
 */
export function readBounded(file: string, limit: number): { text: string } | { tooLarge: number } {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > limit) return { tooLarge: size };
    // read up to limit + 1 bytes: a file that grows while being read is still caught
    const buf = Buffer.alloc(Math.min(limit + 1, Math.max(size, 0) + 1));
    let got = 0;
    for (;;) {
      const n = readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
      if (got === buf.length) break;
    }
    if (got > limit) return { tooLarge: got };
    return { text: buf.subarray(0, got).toString('utf8') };
  } finally {
    closeSync(fd);
  }
}

const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$\{/g;

export function joinPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent ? `${parent}.${key}` : key;
}

export function posAt(file: string, lc: LineCounter, offset: number, p: string): SourcePos {
  const { line, col } = lc.linePos(offset);
  return { file, line, col, path: p };
}

interface WalkCtx {
  file: string;
  lc: LineCounter;
  env: NodeJS.ProcessEnv;
  positions: PositionIndex;
  diagnostics: Diagnostic[];
}

function interpolate(raw: string, at: SourcePos, ctx: WalkCtx): string {
  return raw.replace(ENV_RE, (whole, name: string | undefined, dflt: string | undefined) => {
    if (whole === '$${') return '${';
    const v = ctx.env[name as string];
    if (v !== undefined && v !== '') return v;
    if (dflt !== undefined) return dflt;
    ctx.diagnostics.push({
      code: 'GW103',
      severity: 'error',
      message: `environment variable ${name} is not set (write \${${name}:-default} for a default)`,
      at,
    });
    return '';
  });
}

/** YAML 1.2 core-schema typing of an interpolated plain scalar: integers and booleans. */
function plainScalar(s: string): string | number | boolean {
  if (/^[-+]?[0-9]+$/.test(s) && Number.isSafeInteger(Number(s))) return Number(s);
  if (/^(true|True|TRUE|false|False|FALSE)$/.test(s)) return /^t/i.test(s);
  return s;
}

/** UTF-8 length above limit? (a UTF-16 code unit is at most 3 UTF-8 bytes: short strings are not measured) */
const overBytes = (s: string, limit: number): boolean => s.length * 3 > limit && Buffer.byteLength(s) > limit;

function walk(node: YamlNode | null | undefined, p: string, ctx: WalkCtx): unknown {
  if (node == null) return null;
  const range = node.range ?? [0, 0, 0];
  const at = posAt(ctx.file, ctx.lc, range[0], p);
  ctx.positions.value.set(p, at);
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      const keyNode = pair.key as YamlNode | null;
      const [key, kp, kAt] = mapKey(isScalar(keyNode) ? String(keyNode.value) : String(keyNode), keyNode?.range?.[0] ?? range[0], p, out, ctx);
      const valueNode = pair.value as YamlNode | null;
      if (valueNode == null) {
        ctx.positions.value.set(kp, kAt);
        out[key] = null;
      } else {
        out[key] = walk(valueNode, kp, ctx);
      }
    }
    return out;
  }
  if (isSeq(node)) {
    return node.items.map((item, i) => walk(item as YamlNode, joinPath(p, i), ctx));
  }
  if (isScalar(node)) return scalarValue(node.value, node.type === 'PLAIN', at, ctx);
  // aliases are resolved by toJS; we disallow them to keep positions honest
  ctx.diagnostics.push({ code: 'GW104', severity: 'error', message: 'YAML aliases/anchors are not supported', at });
  return null;
}

/** A mapping key: bounded, its position recorded, a duplicate reported. [key, its path, its position] */
function mapKey(key: string, offset: number, p: string, out: Record<string, unknown>, ctx: WalkCtx): [string, string, SourcePos] {
  const { line, col } = ctx.lc.linePos(offset);
  if (overBytes(key, 256)) {
    ctx.diagnostics.push({ code: 'GW108', severity: 'error', message: `key is ${Buffer.byteLength(key)} bytes long; keys are at most 256 bytes`, at: { file: ctx.file, line, col, path: p } });
    key = `${key.slice(0, 32)}…`;
  }
  const kp = joinPath(p, key);
  const kAt: SourcePos = { file: ctx.file, line, col, path: kp };
  ctx.positions.key.set(kp, kAt);
  if (Object.prototype.hasOwnProperty.call(out, key)) {
    ctx.diagnostics.push({ code: 'GW102', severity: 'error', message: `duplicate key "${key}"`, at: kAt });
  }
  return [key, kp, kAt];
}

/** A scalar's value: bounded, ${VAR} interpolated. */
function scalarValue(v: unknown, plain: boolean, at: SourcePos, ctx: WalkCtx): unknown {
  if (typeof v !== 'string') return v;
  if (overBytes(v, LIMITS.scalarBytes)) return tooLong(v, at, ctx);
  if (!v.includes('$')) return v; // nothing to interpolate (every ${…} and $${ starts with $)
  const s = interpolate(v, at, ctx);
  if (overBytes(s, LIMITS.scalarBytes)) return tooLong(s, at, ctx);
  // An unquoted `${VAR}` takes the type YAML gives the value written in place
  // (`port: ${PORT}` is an integer); quote it to keep a string.
  return plain && s !== v ? plainScalar(s) : s;
}

/** walk() over the fast reader's nodes (src/config/fast-yaml.ts): the same values, positions and diagnostics. */
function walkFast(node: FastNode, p: string, ctx: WalkCtx): unknown {
  const at = posAt(ctx.file, ctx.lc, node.o, p);
  ctx.positions.value.set(p, at);
  if (node.t === 'map') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of node.pairs) {
      const [key, kp] = mapKey(k.v, k.o, p, out, ctx);
      out[key] = walkFast(v, kp, ctx);
    }
    return out;
  }
  if (node.t === 'seq') return node.items.map((item, i) => walkFast(item, joinPath(p, i), ctx));
  return scalarValue(node.v, node.plain, at, ctx);
}

function tooLong(s: string, at: SourcePos, ctx: WalkCtx): null {
  ctx.diagnostics.push({
    code: 'GW108',
    severity: 'error',
    message: `value is ${Buffer.byteLength(s)} bytes long; a value is at most ${LIMITS.scalarBytes} bytes (${formatBytes(LIMITS.scalarBytes)})`,
    at,
  });
  return null;
}

/** Flow collections (`[`, `{`) that are never closed, from the concrete syntax tree. */
function unclosedFlows(text: string): { offset: number; open: string }[] {
  const out: { offset: number; open: string }[] = [];
  const visit = (t: unknown): void => {
    if (!t || typeof t !== 'object') return;
    if (Array.isArray(t)) {
      for (const x of t) visit(x);
      return;
    }
    const tok = t as Record<string, unknown> & { type?: string };
    if (tok.type === 'flow-collection') {
      const start = tok.start as { offset: number; source: string };
      const close = start.source === '[' ? ']' : '}';
      if (!(tok.end as { source: string }[]).some((e) => e.source === close)) out.push({ offset: start.offset, open: start.source });
      visit(tok.items);
      return;
    }
    for (const k of Object.keys(tok)) visit(tok[k]);
  };
  for (const tok of new Parser().parse(text)) visit(tok);
  return out;
}

/**
 * YAML (and JSON) syntax errors at the place the parser failed, once per real problem: an
 * error whose range encloses another one is the same problem seen from outside, and an
 * unclosed `[`/`{` is reported where it was opened (the parser only notices at the end).
 */
export function syntaxDiagnostics(displayFile: string, text: string, lc: LineCounter, errors: YAMLError[]): Diagnostic[] {
  const opens = errors.some((e) => /end with an? [\]}]/.test(e.message)) ? unclosedFlows(text) : [];
  const used = new Set<number>();
  const located = errors.map((e) => {
    let offset = e.pos[0];
    let message = e.message.split('\n')[0];
    const m = /end with an? ([\]}])/.exec(message);
    if (m) {
      const open = m[1] === ']' ? '[' : '{';
      const hit = opens.filter((o) => o.open === open && o.offset < e.pos[0] && !used.has(o.offset)).pop();
      if (hit) {
        used.add(hit.offset);
        offset = hit.offset;
        message = `${open} is never closed with ${m[1]} (${message})`;
      }
    }
    return { e, offset, message };
  });
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  for (const x of located) {
    const [a, b] = x.e.pos;
    // a cascade: this error's range strictly encloses the start of another error
    if (located.some((y) => y !== x && y.offset > a && y.offset < b && y.e.pos[1] - y.e.pos[0] < b - a)) continue;
    const { line, col } = lc.linePos(Math.min(x.offset, text.length));
    const key = `${line}:${col}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ code: 'GW101', severity: 'error', message: `YAML syntax: ${x.message}`, at: { file: displayFile, line, col, path: '' } });
  }
  return out;
}

export interface ParsedFile {
  value: unknown;
  positions: PositionIndex;
  diagnostics: Diagnostic[];
  text: string;
}

export function parseFile(displayFile: string, text: string, env: NodeJS.ProcessEnv): ParsedFile {
  const fast = fastParse(text);
  if (fast) {
    // the plain layout: read without the yaml package (same result, a fraction of the work)
    const lc = new LineCounter();
    lc.addNewLine(0);
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lc.addNewLine(i + 1);
    const positions: PositionIndex = { value: new Map(), key: new Map() };
    const diagnostics: Diagnostic[] = [];
    const value = walkFast(fast, '', { file: displayFile, lc, env, positions, diagnostics });
    return { value, positions, diagnostics, text };
  }
  return parseFileYaml(displayFile, text, env);
}

/** parseFile through the yaml package (any YAML; syntax errors with their positions). */
export function parseFileYaml(displayFile: string, text: string, env: NodeJS.ProcessEnv): ParsedFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  const positions: PositionIndex = { value: new Map(), key: new Map() };
  const diagnostics: Diagnostic[] = [];
  diagnostics.push(...syntaxDiagnostics(displayFile, text, lc, doc.errors));
  if (doc.errors.length) return { value: null, positions, diagnostics, text };
  const ctx: WalkCtx = { file: displayFile, lc, env, positions, diagnostics };
  const value = walk(doc.contents as YamlNode, '', ctx);
  return { value, positions, diagnostics, text };
}

function displayName(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') ? rel : file;
}

/** Sections merged from included files: lists concatenate, maps merge by key. */
const LIST_SECTIONS = ['listeners', 'routes'];
const MAP_SECTIONS = ['upstreams', 'caches'];

function shiftPositions(into: PositionIndex, from: PositionIndex, rename: (p: string) => string | null): void {
  for (const [k, v] of from.value) {
    const n = rename(k);
    if (n !== null) into.value.set(n, { ...v, path: n });
  }
  for (const [k, v] of from.key) {
    const n = rename(k);
    if (n !== null) into.key.set(n, { ...v, path: n });
  }
}

export function loadConfig(file: string, opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const abs = path.resolve(file);
  const baseDir = path.dirname(abs);
  const display = displayName(abs);
  const diagnostics: Diagnostic[] = [];
  const files = [abs];
  let text: string;
  const tooLarge = (size: number, what: string, at: SourcePos, limit = LIMITS.fileBytes): Diagnostic => ({
    code: 'GW107',
    severity: 'error',
    message: `${what} is ${formatBytes(size)}; gatewayctl reads at most ${formatBytes(limit)}${limit === LIMITS.totalBytes ? ' for a config and all its included files' : ' per config file'}`,
    at,
  });
  try {
    if (opts.text !== undefined) {
      text = opts.text;
    } else {
      const r = readBounded(abs, LIMITS.fileBytes);
      if ('tooLarge' in r) {
        diagnostics.push(tooLarge(r.tooLarge, display, { file: display, line: 1, col: 1, path: '' }));
        return { file: display, baseDir, value: null, positions: { value: new Map(), key: new Map() }, hash: '', diagnostics, files };
      }
      text = r.text;
    }
    if (Buffer.byteLength(text) > LIMITS.fileBytes) {
      diagnostics.push(tooLarge(Buffer.byteLength(text), display, { file: display, line: 1, col: 1, path: '' }));
      return { file: display, baseDir, value: null, positions: { value: new Map(), key: new Map() }, hash: '', diagnostics, files };
    }
  } catch (e) {
    diagnostics.push({
      code: 'GW100',
      severity: 'error',
      message: `cannot read ${display}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      at: null,
    });
    return { file: display, baseDir, value: null, positions: { value: new Map(), key: new Map() }, hash: '', diagnostics, files };
  }
  const main = parseFile(display, text, env);
  diagnostics.push(...main.diagnostics);
  const hasher = createHash('sha256');
  if (main.value === null || typeof main.value !== 'object' || Array.isArray(main.value)) {
    if (!main.diagnostics.length) {
      diagnostics.push({ code: 'GW101', severity: 'error', message: 'top level must be a mapping', at: { file: display, line: 1, col: 1, path: '' } });
    }
    return { file: display, baseDir, value: null, positions: main.positions, hash: '', diagnostics, files };
  }
  const root = main.value as Record<string, unknown>;
  const positions = main.positions;

  const includes = root.include;
  if (includes !== undefined) {
    if (!Array.isArray(includes) || includes.some((x) => typeof x !== 'string')) {
      diagnostics.push({ code: 'GW105', severity: 'error', message: 'include must be a list of file paths', at: positions.value.get('include') ?? null });
    } else {
      let total = Buffer.byteLength(text);
      includes.forEach((inc: string, i: number) => {
        const incAt = positions.value.get(`include[${i}]`) ?? null;
        const incAbs = path.resolve(baseDir, inc);
        let incText: string;
        const here = incAt ?? { file: display, line: 1, col: 1, path: `include[${i}]` };
        try {
          const r = readBounded(incAbs, Math.min(LIMITS.fileBytes, LIMITS.totalBytes - total));
          if ('tooLarge' in r) {
            const overTotal = r.tooLarge <= LIMITS.fileBytes;
            diagnostics.push(tooLarge(overTotal ? total + r.tooLarge : r.tooLarge, overTotal ? `${inc} with the files before it` : `included file ${inc}`, here, overTotal ? LIMITS.totalBytes : LIMITS.fileBytes));
            return;
          }
          incText = r.text;
        } catch (e) {
          diagnostics.push({ code: 'GW105', severity: 'error', message: `cannot read included file ${inc}: ${(e as NodeJS.ErrnoException).code ?? e}`, at: incAt });
          return;
        }
        total += Buffer.byteLength(incText);
        files.push(incAbs);
        const parsed = parseFile(displayName(incAbs), incText, env);
        diagnostics.push(...parsed.diagnostics);
        if (parsed.value === null) return;
        if (typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
          diagnostics.push({ code: 'GW105', severity: 'error', message: `included file ${inc} must be a mapping`, at: incAt });
          return;
        }
        const incRoot = parsed.value as Record<string, unknown>;
        for (const [section, v] of Object.entries(incRoot)) {
          const secAt = parsed.positions.key.get(section) ?? incAt;
          if (LIST_SECTIONS.includes(section) && Array.isArray(v)) {
            const existing = (Array.isArray(root[section]) ? root[section] : []) as unknown[];
            const offset = existing.length;
            root[section] = existing.concat(v);
            shiftPositions(positions, parsed.positions, (p) => {
              const m = new RegExp(`^${section}\\[(\\d+)\\](.*)$`).exec(p);
              return m ? `${section}[${Number(m[1]) + offset}]${m[2]}` : null;
            });
          } else if ((MAP_SECTIONS.includes(section) || section === 'limits') && v && typeof v === 'object' && !Array.isArray(v)) {
            const existing = (root[section] && typeof root[section] === 'object' ? root[section] : {}) as Record<string, unknown>;
            const merged = mergeMaps(section, existing, v as Record<string, unknown>, section === 'limits' ? 2 : 1, diagnostics, parsed.positions);
            root[section] = merged;
            shiftPositions(positions, parsed.positions, (p) => (p.startsWith(`${section}.`) ? p : null));
          } else {
            diagnostics.push({
              code: 'GW105',
              severity: 'error',
              message: `included files may only contribute ${[...LIST_SECTIONS, ...MAP_SECTIONS, 'limits'].join(', ')} (got "${section}")`,
              at: secAt,
            });
          }
        }
        hasher.update(incText);
      });
    }
    delete root.include;
  }
  hasher.update(JSON.stringify(root));
  return { file: display, baseDir, value: root, positions, hash: hasher.digest('hex'), diagnostics, files };
}

function mergeMaps(
  section: string,
  into: Record<string, unknown>,
  from: Record<string, unknown>,
  depth: number,
  diagnostics: Diagnostic[],
  fromPos: PositionIndex,
  prefix = section,
): Record<string, unknown> {
  const out = { ...into };
  for (const [k, v] of Object.entries(from)) {
    const p = `${prefix}.${k}`;
    if (depth > 1 && v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object') {
      out[k] = mergeMaps(section, out[k] as Record<string, unknown>, v as Record<string, unknown>, depth - 1, diagnostics, fromPos, p);
    } else if (Object.prototype.hasOwnProperty.call(out, k)) {
      diagnostics.push({ code: 'GW106', severity: 'error', message: `${p} is defined both here and in the including file`, at: fromPos.key.get(p) ?? null });
    } else {
      out[k] = v;
    }
  }
  return out;
}
