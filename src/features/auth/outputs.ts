// Build-time inputs and artefacts of njs authentication. Reads what `auth:` names (the keys
// store, JWKS documents, HMAC secrets from files or the environment) and turns it into
// build output: conf.d/keys.map (SHA-256 hashes only), njs/auth.json (the gw_auth preload
// object; holds HMAC secrets, written 0600). The njs module itself comes from ./njs.ts.
// Part of compile(): reads inputs, writes nothing. A broken input is a diagnostic (GW379)
// positioned inside that file where possible.
import { trafficReadsClaims } from '../traffic/index.ts';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { isActive, KEYS_FILE_MAX_BYTES, KeyStoreError, keysFileTooLarge, nativeKeyIds, parseKeys, renderKeyMap } from '../../keys/store.ts';
import { formatBytes } from '../../config/load.ts';
import type { InputRequest, Inputs } from '../../config/inputs.ts';

// key files read at build time are bounded like the config (checked before reading)
const JWKS_MAX_BYTES = 1024 * 1024;
const SECRET_MAX_BYTES = 64 * 1024;

/** The files and environment values the auth outputs are built from (read in the load stage). */
export function authInputRequests(m: GatewayModel): InputRequest[] {
  const out: InputRequest[] = [];
  const auth = m.auth;
  if (auth?.apiKeys) out.push({ kind: 'text', file: auth.apiKeys.file, maxBytes: KEYS_FILE_MAX_BYTES });
  for (const pr of auth?.jwt ?? []) {
    if (pr.jwksFile) out.push({ kind: 'text', file: pr.jwksFile, maxBytes: JWKS_MAX_BYTES });
    if (pr.secretFile) out.push({ kind: 'text', file: pr.secretFile, maxBytes: SECRET_MAX_BYTES });
    else if (pr.secretEnv) out.push({ kind: 'env', name: pr.secretEnv });
  }
  return out;
}

/** The file's text from the inputs, or an error naming only its size (never its contents) or errno. */
function inputText(inputs: Inputs, file: string, what: string): { text: string } | { error: unknown } {
  const v = inputs.text(file);
  if (v?.kind === 'text') return { text: v.text };
  if (v?.kind === 'tooLarge') return { error: new Error(`${what} is ${formatBytes(v.size)}; gatewayctl reads at most ${formatBytes(v.maxBytes)}`) };
  if (v?.kind === 'error') return { error: v.error };
  return { error: new Error(`${what} was not read`) };
}
import { authPreloadText, buildAuthPreload, PreloadError, renderAuthPreload, type AuthPreloadObject, type JwtProviderInput } from '../../njs/preload.ts';
import { q } from '../../plan/quote.ts';
import type { ClaimValueRule, Diagnostic, GatewayModel, SourcePos } from '../../model/types.ts';
import { jwtFastMap, liveKeys, routeJwtProvider, usesApiKeys } from './render.ts';

export const AUTH_FILES = {
  keyMap: 'conf.d/keys.map',
  jwtFastMap: 'conf.d/jwt-fast.map',
  preload: 'njs/auth.json',
};

export interface AuthBuildOptions {
  now?: Date; // keys revoked or expired before this are left out of the key map
  locate: (yamlPath: string, fallback: SourcePos) => SourcePos; // gateway.yaml positions
}

export interface AuthBuild {
  files: Record<string, string>;
  diagnostics: Diagnostic[];
  /** keys of the maps written here (the active API key hashes), for sizing map_hash_* */
  mapKeys: string[][];
}

const display = (f: string): string => {
  const rel = path.relative(process.cwd(), f);
  return rel && !rel.startsWith('..') ? rel : f;
};

const errnoText = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** line/col (1-based) of a character offset. */
function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const line = before.split('\n').length;
  return { line, col: offset - before.lastIndexOf('\n') };
}

/**
 * What is wrong with a JSON text, in words that never quote it: JSON.parse messages echo the
 * start of the input (`Unexpected token 'm', "my-hmac-se"... is not valid JSON`), and a
 * jwks_file may by mistake name a secret or a private key.
 */
export function jsonSyntaxText(parseMessage: string): string {
  const known: [RegExp, string][] = [
    [/^Unexpected end of JSON input/, 'unexpected end of input'],
    [/^Expected property name/, "expected a property name or '}'"],
    [/^Expected ',' or '}'/, "expected ',' or '}' after a property value"],
    [/^Expected ',' or '\]'/, "expected ',' or ']' after an array element"],
    [/^Expected ':'/, "expected ':' after a property name"],
    [/^Expected double-quoted property name/, 'expected a double-quoted property name'],
    [/^Unterminated string/, 'unterminated string'],
    [/^Bad control character/, 'control character inside a string'],
    [/^Bad (escaped character|Unicode escape)/, 'bad escape sequence inside a string'],
    [/^Unexpected non-whitespace character after JSON/, 'unexpected text after the JSON value'],
    [/^(Exponent part is missing|No number after minus sign|Unterminated fractional number)/, 'malformed number'],
  ];
  for (const [re, text] of known) if (re.test(parseMessage)) return text;
  return 'not a JSON document (unexpected character)';
}

/** Parse a JWKS document strictly (JSON) and index the position of each `keys[i]`. */
export function parseJwks(text: string, file: string): { doc: unknown; keyPos: SourcePos[] } | { error: SourcePos & { message: string } } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /at position (\d+)/.exec(msg) ?? /line (\d+) column (\d+)/.exec(msg);
    let pos = { line: 1, col: 1 };
    if (m && m.length === 2) pos = lineCol(text, Number(m[1]));
    else if (m) pos = { line: Number(m[1]), col: Number(m[2]) };
    return { error: { file, ...pos, path: '', message: `invalid JSON: ${jsonSyntaxText(msg)}` } };
  }
  // JSON is YAML: reuse the YAML parser for positions of keys[i]
  const lc = new LineCounter();
  const ydoc = parseDocument(text, { lineCounter: lc });
  const keyPos: SourcePos[] = [];
  const root = ydoc.contents;
  const keys = isMap(root) ? (root.get('keys', true) as YamlNode | undefined) : undefined;
  if (keys && isSeq(keys)) {
    keys.items.forEach((item, i) => {
      const { line, col } = lc.linePos((item as YamlNode).range?.[0] ?? 0);
      keyPos.push({ file, line, col, path: `keys[${i}]` });
    });
  }
  return { doc, keyPos };
}

/** A model claim rule as the preload object holds it (absent parts left out). */
function claimRule(c: ClaimValueRule): { claim: string; oneOf?: (string | number | boolean)[]; contains?: string[] } {
  return { claim: c.claim, ...(c.oneOf ? { oneOf: c.oneOf } : {}), ...(c.contains ? { contains: c.contains } : {}) };
}

/** Secret file content without one trailing newline (editors add it). */
function secretText(raw: string): string {
  return raw.replace(/\r?\n$/, '');
}

/** Some upstream hashes on a JWT claim (the routing feature's `hash_key: { jwt_claim }`): the
 *  JWT handlers then derive the key in their own call (njs/lib/handlers.ts, claimKeyFor). */
function hashesOnClaim(m: GatewayModel): boolean {
  // (or a traffic rule reads a claim: the same js_var carries it)
  return m.upstreams.some((u) => u.balance === 'consistent_hash' && u.hashKey?.kind === 'jwt_claim') || trafficReadsClaims(m);
}

/** The key map and the JWT preload object, from inputs read in the load stage (no disk access). */
export function buildAuthArtifacts(m: GatewayModel, inputs: Inputs, opts: AuthBuildOptions): AuthBuild {
  const files: Record<string, string> = {};
  const diagnostics: Diagnostic[] = [];
  const now = opts.now ?? new Date();
  const mapKeys: string[][] = [];
  const fail = (at: SourcePos, message: string) => diagnostics.push({ code: 'GW379', severity: 'error', message, at });
  const auth = m.auth;

  if (auth?.apiKeys) {
    const k = auth.apiKeys;
    const at = opts.locate('auth.api_keys.file', k.at);
    let text: string | null = null;
    const v = inputs.text(k.file);
    if (v?.kind === 'text') text = v.text;
    else if (v?.kind === 'tooLarge') {
      // too large: refused before reading; reported at auth.api_keys.file
      diagnostics.push({ code: 'GW110', severity: 'error', message: keysFileTooLarge(v.size), at });
    } else {
      const e = v?.kind === 'error' ? v.error : new Error('not read');
      fail(
        at,
        `cannot read keys file ${display(k.file)}: ${errnoText(e)}` +
          ((e as NodeJS.ErrnoException).code === 'ENOENT' ? ` (create one with: gatewayctl keys create --file ${display(k.file)} --name NAME)` : ''),
      );
    }
    if (text !== null) {
      try {
        const keys = parseKeys(text, display(k.file)).keys;
        // the native lane's maps only where a route reads them (they name its variables)
        const native = usesApiKeys(m);
        files[AUTH_FILES.keyMap] = renderKeyMap(keys, now, undefined, { revokedMarks: liveKeys(m), native });
        mapKeys.push(keys.filter((x) => isActive(x, now)).map((x) => x.hash));
        if (native) mapKeys.push(nativeKeyIds(keys, now));
      } catch (e) {
        if (e instanceof KeyStoreError) {
          const msg = e.message.replace(/^.*?:\d+:\d+: /, '').replace(/^[^:]*: /, '');
          fail({ file: e.file, line: e.line ?? 1, col: e.col ?? 1, path: '' }, `keys file: ${msg}`);
        } else {
          fail(at, `keys file ${display(k.file)}: ${(e as Error).message}`);
        }
      }
    }
  }

  const providers: JwtProviderInput[] = [];
  const jwksPositions = new Map<string, SourcePos[]>();
  for (const pr of auth?.jwt ?? []) {
    const p = `auth.jwt.${pr.name}`;
    const input: JwtProviderInput = {
      name: pr.name,
      algorithms: pr.algorithms,
      issuer: pr.issuer,
      audience: pr.audience,
      leeway: pr.leeway,
      requiredClaims: pr.requiredClaims,
      ...(pr.claimValues.length ? { claimValues: pr.claimValues.map(claimRule) } : {}),
      requireExp: pr.requireExp,
      maxLength: pr.maxTokenLength,
      clientClaim: pr.clientClaim,
      ...(pr.roleClaim ? { roleClaim: pr.roleClaim } : {}),
      ...(pr.tierClaim ? { tierClaim: pr.tierClaim } : {}),
    };
    let ok = true;
    if (pr.jwksFile) {
      const at = opts.locate(`${p}.jwks_file`, pr.at);
      const read = inputText(inputs, pr.jwksFile, 'JWKS');
      if ('text' in read) {
        const parsed = parseJwks(read.text, display(pr.jwksFile));
        if ('error' in parsed) {
          const { message, ...pos } = parsed.error;
          fail(pos, `JWKS: ${message}`);
          ok = false;
        } else {
          input.jwks = parsed.doc;
          jwksPositions.set(pr.name, parsed.keyPos);
        }
      } else {
        fail(at, `cannot read JWKS ${display(pr.jwksFile)}: ${errnoText(read.error)}`);
        ok = false;
      }
    }
    let secret: string | null = null;
    if (pr.secretFile) {
      const read = inputText(inputs, pr.secretFile, 'secret file');
      if ('text' in read) {
        secret = secretText(read.text);
      } else {
        fail(opts.locate(`${p}.secret_file`, pr.at), `cannot read secret file ${display(pr.secretFile)}: ${errnoText(read.error)}`);
        ok = false;
      }
    } else if (pr.secretEnv) {
      const v = inputs.env(pr.secretEnv);
      if (v === undefined || v === '') {
        fail(opts.locate(`${p}.secret_env`, pr.at), `environment variable ${pr.secretEnv} (the HMAC secret) is not set`);
        ok = false;
      } else {
        secret = v;
      }
    }
    if (secret !== null) input.secrets = [{ secret }];
    if (ok) providers.push(input);
  }

  // a route narrowing its provider with claim_values verifies with a variant of it (render.ts
  // routeJwtProvider): the same keys and policy, the provider's values and the route's
  for (const r of m.routes) {
    const name = routeJwtProvider(r);
    const base = providers.find((x) => x.name === r.auth?.jwtProvider);
    if (!name || !base || name === base.name || providers.some((x) => x.name === name)) continue;
    providers.push({ ...base, name, claimValues: [...(base.claimValues ?? []), ...r.auth!.claimValues.map(claimRule)] });
  }

  if (providers.length) {
    // one provider at a time, so every problem is reported against its own provider
    for (const input of providers) {
      try {
        renderAuthPreload([input]);
      } catch (e) {
        if (!(e instanceof PreloadError)) throw e;
        const pr = auth!.jwt.find((x) => x.name === input.name) ?? auth!.jwt.find((x) => input.name.startsWith(`${x.name.slice(0, 40)}.`))!;
        const idx = /jwks\.keys\[(\d+)\]/.exec(e.message);
        const keyAt = idx ? jwksPositions.get(input.name)?.[Number(idx[1])] : undefined;
        // the message may quote configuration, never secret material
        const detail = e.message.replace(/^auth provider [^:]*: /, '');
        if (keyAt) fail(keyAt, `JWKS of provider ${input.name}: ${detail.replace(/^jwks\.keys\[\d+\]:? ?/, '')}`);
        else fail(opts.locate(`auth.jwt.${input.name}`, pr.at), `JWT provider ${input.name}: ${detail}`);
      }
    }
    if (!diagnostics.length) {
      const claimHash = hashesOnClaim(m);
      const preload = buildAuthPreload(providers, {
        ...(auth!.jwtCache ? { jwtCacheTtl: auth!.jwtCache.ttlSeconds, jwtCacheHashed: auth!.jwtCache.key === 'sha256' } : {}),
        ...(claimHash ? { claimHash: true } : {}),
      });
      files[AUTH_FILES.preload] = authPreloadText(preload);
      if (jwtFastMap(m)) files[AUTH_FILES.jwtFastMap] = renderJwtFastMap(preload, claimHash);
    }
  }

  return { files, diagnostics, mapKeys };
}

/**
 * conf.d/jwt-fast.map: each provider's cache generation (a digest, no secret) by the name the
 * routes set in $gw_jwt_provider, for the fast path of gateway.jwtSync / gateway.jwtCached
 * (njs/lib/handlers.ts). Empty when a JWT claim feeds a hash key or a traffic rule: only the
 * full handler derives $gw_claim_key, so every request takes it then. A provider whose entries
 * are keyed by the header's SHA-256 (jwt_cache.key: sha256) is in $gw_jwt_fast_sha256 instead,
 * which the fast path reads only when $gw_jwt_fast has nothing for the route's provider.
 */
export function renderJwtFastMap(preload: AuthPreloadObject, claimHash: boolean): string {
  const lines = ['# Generated by gatewayctl: JWT provider -> its verified-token cache generation; do not edit.', 'map $gw_jwt_provider $gw_jwt_fast {', '    default "";'];
  const entries = (hashed: boolean) =>
    claimHash ? [] : Object.entries(preload.jwt).filter(([, p]) => p.cacheGen && !!p.cacheHashed === hashed).map(([name, p]) => `    ${q(name, 'token')} ${q(p.cacheGen!, 'token')};`);
  lines.push(...entries(false), '}');
  const hashed = entries(true);
  if (hashed.length) lines.push('# providers whose entries are keyed by the SHA-256 of the header (jwt_cache.key: sha256)', 'map $gw_jwt_provider $gw_jwt_fast_sha256 {', '    default "";', ...hashed, '}');
  lines.push('');
  return lines.join('\n');
}

/**
 * A build output with its secret material replaced, for showing it (`gatewayctl diff`):
 * HMAC secrets in njs/auth.json become `<secret sha256:…>` (a 12-hex-digit prefix tells a
 * rotation apart without revealing anything about a ≥ 32-byte secret). Other files as is.
 */
export function redactSecrets(rel: string, text: string): string {
  if (rel !== AUTH_FILES.preload) return text;
  try {
    const doc = JSON.parse(text) as { jwt?: Record<string, { keys?: { kty?: string; k?: string }[] }> };
    for (const p of Object.values(doc.jwt ?? {})) {
      for (const k of p.keys ?? []) {
        if (k.kty === 'oct' && typeof k.k === 'string') k.k = `<secret sha256:${createHash('sha256').update(k.k).digest('hex').slice(0, 12)}>`;
      }
    }
    return `${JSON.stringify(doc, null, 2)}\n`;
  } catch {
    return '(njs/auth.json: not shown, it may hold secrets)\n';
  }
}
