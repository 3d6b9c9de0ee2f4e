// JWT (JWS compact) parsing and verification for the njs default engine, engine-neutral
// so it also runs under Node for unit tests.
//
// HS256 uses the synchronous `crypto.createHmac` (njs only offers md5/sha1/sha256 there);
// HS384/HS512 compute the MAC with WebCrypto; every HMAC is compared in constant time
// (timing.ts). RS*, PS* and ES* are verified by WebCrypto (`crypto.subtle`, async). Keys come from a
// JWKS prepared at build time (HMAC secrets as `kty: "oct"` JWKs) and are chosen by `kid`.
//
// Rejected: `alg: none` (any spelling), algorithms outside the policy, algorithm/key-type
// confusion (an HMAC alg against an RSA/EC key and vice versa, or a JWK pinned to another
// `alg`), `crit` headers, non-canonical base64url, non-object JSON, oversized tokens,
// expired / not-yet-valid tokens (with leeway), wrong issuer/audience, missing claims.
// Failure details end up in the error log: token-derived strings in them go through
// logText() (quoted, escaped, length-capped), never verbatim.
import cr from 'crypto';
import { b64uDecode, b64uDecodeString } from './base64url.ts';
import { timingSafeEqual } from './timing.ts';
import { logText } from './logtext.ts';
import { hasOwn, parseObject, type JsonObject } from './json.ts';

export interface Jwk {
  kty: string; // 'oct' | 'RSA' | 'EC'
  kid?: string;
  alg?: string;
  use?: string;
  k?: string; // oct: base64url secret
  n?: string; // RSA modulus
  e?: string; // RSA exponent
  crv?: string; // EC curve
  x?: string;
  y?: string;
  raw?: string; // EC: the public point 0x04 || x || y, base64url (src/njs/preload.ts, ecRawPoint)
}

export interface JwtPolicy {
  algorithms: string[]; // allowed `alg` values
  keys: Jwk[]; // JWKS `keys`
  issuer?: string[]; // accepted `iss` values; absent/empty = not checked
  audience?: string[]; // at least one must appear in `aud`; absent/empty = not checked
  leeway?: number; // seconds of clock skew for exp/nbf/iat (default 0)
  requiredClaims?: string[]; // claim names that must be present
  claimValues?: ClaimValueRule[]; // claim values that must be present (provider's, narrowed per route)
  requireExp?: boolean; // default true
  maxLength?: number; // maximum token length in characters (default 8192)
}

// A required claim value (auth.jwt.<name>.claim_values, route auth.claim_values): the claim is
// one of `oneOf` (strict equality: a string never matches a number), and/or a list, or a
// space-separated string like OAuth `scope` (RFC 6749 §3.3), holding every `contains` value.
export interface ClaimValueRule {
  claim: string;
  oneOf?: (string | number | boolean)[];
  contains?: string[];
}

export type JwtReason =
  | 'missing_token'
  | 'token_too_large'
  | 'malformed'
  | 'bad_header'
  | 'alg_none'
  | 'alg_not_allowed'
  | 'unsupported_crit'
  | 'no_key'
  | 'alg_key_mismatch'
  | 'bad_signature'
  | 'bad_claims'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_issuer'
  | 'bad_audience'
  | 'missing_claim';

export type { JsonObject };

export interface JwtOk {
  ok: true;
  header: JsonObject;
  claims: JsonObject;
  payloadSegment: string; // the verified base64url payload, forwardable as-is
  kid: string | null;
}

export interface JwtFail {
  ok: false;
  reason: JwtReason;
  detail: string;
}

export type JwtResult = JwtOk | JwtFail;

export interface ParsedJwt {
  ok: true;
  header: JsonObject;
  claims: JsonObject;
  signingInput: string;
  headerSegment: string;
  payloadSegment: string;
  signatureSegment: string;
  signature: Buffer;
}

export const DEFAULT_MAX_TOKEN_LENGTH = 8192;

export function fail(reason: JwtReason, detail: string): JwtFail {
  return { ok: false, reason: reason, detail: detail };
}

// Policy lists may come from a js_preload_object: read-only array-likes without Array
// methods in njs, so they are only ever walked by index.
export function listHas(list: ArrayLike<unknown> | undefined, v: unknown): boolean {
  if (!list) {
    return false;
  }
  for (let i = 0; i < list.length; i++) {
    if (list[i] === v) {
      return true;
    }
  }
  return false;
}

// Split and decode a compact JWS; no signature check.
export function parseJwt(token: string, maxLength: number): ParsedJwt | JwtFail {
  if (typeof token !== 'string' || token.length === 0) {
    return fail('missing_token', 'no token');
  }
  if (token.length > maxLength) {
    return fail('token_too_large', 'token longer than ' + maxLength);
  }
  const parts = token.split('.');
  if (parts.length !== 3) {
    return fail('malformed', 'expected 3 segments, got ' + parts.length);
  }
  if (parts[0].length === 0 || parts[1].length === 0 || parts[2].length === 0) {
    return fail('malformed', 'empty segment');
  }
  const header = parseObject(b64uDecodeString(parts[0]));
  if (header === null) {
    return fail('malformed', 'header is not base64url JSON object');
  }
  const claims = parseObject(b64uDecodeString(parts[1]));
  if (claims === null) {
    return fail('malformed', 'payload is not base64url JSON object');
  }
  const signature = b64uDecode(parts[2]);
  if (signature === null) {
    return fail('malformed', 'signature is not base64url');
  }
  return {
    ok: true,
    header: header,
    claims: claims,
    signingInput: parts[0] + '.' + parts[1],
    headerSegment: parts[0],
    payloadSegment: parts[1],
    signatureSegment: parts[2],
    signature: signature,
  };
}

// Key type an algorithm needs; '' for algorithms this module does not implement.
export function keyTypeFor(alg: string): string {
  if (alg === 'HS256' || alg === 'HS384' || alg === 'HS512') {
    return 'oct';
  }
  if (alg === 'RS256' || alg === 'RS384' || alg === 'RS512' || alg === 'PS256' || alg === 'PS384' || alg === 'PS512') {
    return 'RSA';
  }
  if (alg === 'ES256') {
    return 'EC:P-256';
  }
  if (alg === 'ES384') {
    return 'EC:P-384';
  }
  return '';
}

function jwkType(k: Jwk): string {
  return k.kty === 'EC' ? 'EC:' + k.crv : k.kty;
}

// Header checks and key choice: by `kid` when present, else the only key of the right type.
export function selectKey(header: JsonObject, policy: JwtPolicy): Jwk | JwtFail {
  const alg = header.alg;
  if (typeof alg !== 'string' || alg.length === 0) {
    return fail('bad_header', 'missing alg');
  }
  if (alg.toLowerCase() === 'none') {
    return fail('alg_none', 'unsigned tokens are not accepted');
  }
  if (!listHas(policy.algorithms, alg) || keyTypeFor(alg) === '') {
    return fail('alg_not_allowed', 'alg ' + logText(alg) + ' not allowed');
  }
  if (hasOwn(header, 'crit')) {
    return fail('unsupported_crit', 'crit header not supported');
  }
  const kid = header.kid;
  if (kid !== undefined && typeof kid !== 'string') {
    return fail('bad_header', 'kid must be a string');
  }
  const want = keyTypeFor(alg);
  const keys = policy.keys;
  let candidate: Jwk | null = null;
  let matches = 0;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (typeof kid === 'string' && k.kid !== kid) {
      continue;
    }
    if (typeof kid !== 'string' && jwkType(k) !== want) {
      continue;
    }
    candidate = k;
    matches++;
  }
  if (candidate === null) {
    return fail('no_key', typeof kid === 'string' ? 'no key with kid ' + logText(kid) : 'no key for ' + logText(alg));
  }
  if (matches > 1) {
    return fail('no_key', 'ambiguous key choice; tokens must carry a kid');
  }
  // Algorithm confusion: the key decides which family may be used with it.
  if (jwkType(candidate) !== want) {
    return fail('alg_key_mismatch', 'alg ' + logText(alg) + ' used with a ' + logText(jwkType(candidate)) + ' key');
  }
  if (typeof candidate.alg === 'string' && candidate.alg !== alg) {
    return fail('alg_key_mismatch', 'key is pinned to ' + logText(candidate.alg));
  }
  if (candidate.use !== undefined && candidate.use !== 'sig') {
    return fail('alg_key_mismatch', 'key is not a signature key');
  }
  return candidate;
}

function hashName(alg: string): string {
  const bits = alg.substring(2);
  return 'SHA-' + bits;
}

interface WebCryptoParams {
  format: string;
  keyData: object;
  importAlg: object;
  verifyAlg: object;
}

function webCryptoParams(alg: string, key: Jwk): WebCryptoParams {
  const hash = hashName(alg);
  const family = alg.substring(0, 2);
  if (family === 'RS') {
    return {
      format: 'jwk',
      keyData: { kty: 'RSA', n: key.n, e: key.e },
      importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: hash },
      verifyAlg: { name: 'RSASSA-PKCS1-v1_5' },
    };
  }
  if (family === 'PS') {
    return {
      format: 'jwk',
      keyData: { kty: 'RSA', n: key.n, e: key.e },
      importAlg: { name: 'RSA-PSS', hash: hash },
      verifyAlg: { name: 'RSA-PSS', saltLength: Number(alg.substring(2)) / 8 },
    };
  }
  // the build's raw point when it has one: imported faster than the JWK
  return {
    format: typeof key.raw === 'string' ? 'raw' : 'jwk',
    keyData: typeof key.raw === 'string' ? Buffer.from(key.raw, 'base64url') : { kty: 'EC', crv: key.crv, x: key.x, y: key.y },
    importAlg: { name: 'ECDSA', namedCurve: key.crv },
    verifyAlg: { name: 'ECDSA', hash: hash },
  };
}

interface SubtleLike {
  importKey(format: string, keyData: object, algorithm: object, extractable: boolean, usages: string[]): Promise<object>;
  verify(algorithm: object, key: object, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
  sign(algorithm: object, key: object, data: Uint8Array): Promise<ArrayBuffer>;
}

function subtle(): SubtleLike {
  return (crypto as unknown as { subtle: SubtleLike }).subtle;
}

function hmacSecret(key: Jwk): Buffer | null {
  const secret = b64uDecode(key.k || '');
  return secret === null || secret.length === 0 ? null : secret;
}

// HS256 signature check: synchronous (createHmac), constant-time comparison.
function hs256Matches(parsed: ParsedJwt, key: Jwk): boolean {
  const secret = hmacSecret(key);
  if (secret === null) {
    return false;
  }
  const mac = cr.createHmac('sha256', secret).update(parsed.signingInput).digest('base64url');
  return timingSafeEqual(parsed.signatureSegment, mac);
}

// HS384/HS512: njs's createHmac has no SHA-384/512, so WebCrypto computes the MAC
// (subtle.sign), and it is compared with the same constant-time function as HS256; never
// subtle.verify, whose comparison is not documented to be constant-time.
async function hmacMatches(parsed: ParsedJwt, key: Jwk, alg: string): Promise<boolean> {
  const secret = hmacSecret(key);
  if (secret === null) {
    return false;
  }
  const ck = await subtle().importKey('raw', secret, { name: 'HMAC', hash: hashName(alg) }, false, ['sign']);
  const mac = await subtle().sign({ name: 'HMAC' }, ck, Buffer.from(parsed.signingInput, 'utf8'));
  return timingSafeEqual(parsed.signatureSegment, Buffer.from(mac).toString('base64url'));
}

// Signature check only. Every HMAC ends in timingSafeEqual; RS*/PS*/ES* use WebCrypto verify.
export async function verifySignature(parsed: ParsedJwt, key: Jwk): Promise<boolean> {
  const alg = parsed.header.alg as string;
  if (alg === 'HS256') {
    return hs256Matches(parsed, key);
  }
  if (alg === 'ES256' && parsed.signature.length !== 64) {
    return false;
  }
  if (alg === 'ES384' && parsed.signature.length !== 96) {
    return false;
  }
  try {
    if (alg === 'HS384' || alg === 'HS512') {
      return await hmacMatches(parsed, key, alg);
    }
    const p = webCryptoParams(alg, key);
    const ck = await subtle().importKey(p.format, p.keyData, p.importAlg, false, ['verify']);
    const data = Buffer.from(parsed.signingInput, 'utf8');
    return (await subtle().verify(p.verifyAlg, ck, parsed.signature, data)) === true;
  } catch (e) {
    return false;
  }
}

function numericClaim(claims: JsonObject, name: string): number | null | undefined {
  if (!hasOwn(claims, name)) {
    return undefined;
  }
  const v = claims[name];
  // finite: v - v is 0 for a finite number, NaN for NaN and ±Infinity (isFinite is a global)
  return typeof v === 'number' && v - v === 0 ? v : null;
}

// Registered-claim checks (RFC 7519 §4.1); nowSec in unix seconds.
export function checkClaims(claims: JsonObject, policy: JwtPolicy, nowSec: number): JwtFail | null {
  const leeway = typeof policy.leeway === 'number' ? policy.leeway : 0;
  const exp = numericClaim(claims, 'exp');
  const nbf = numericClaim(claims, 'nbf');
  const iat = numericClaim(claims, 'iat');
  if (exp === null || nbf === null || iat === null) {
    return fail('bad_claims', 'exp/nbf/iat must be numbers');
  }
  if (exp === undefined && policy.requireExp !== false) {
    return fail('missing_claim', 'exp is required');
  }
  if (exp !== undefined && nowSec >= exp + leeway) {
    return fail('expired', 'token expired');
  }
  if (nbf !== undefined && nowSec + leeway < nbf) {
    return fail('not_yet_valid', 'token not valid yet');
  }
  if (iat !== undefined && iat > nowSec + leeway) {
    return fail('not_yet_valid', 'token issued in the future');
  }
  const issuers = policy.issuer;
  if (issuers && issuers.length > 0) {
    const iss = claims.iss;
    if (typeof iss !== 'string' || !listHas(issuers, iss)) {
      return fail('bad_issuer', 'issuer not accepted');
    }
  }
  const audiences = policy.audience;
  if (audiences && audiences.length > 0) {
    const aud = claims.aud;
    let list: unknown[] = [];
    if (typeof aud === 'string') {
      list = [aud];
    } else if (Array.isArray(aud)) {
      list = aud;
    } else if (aud !== undefined) {
      return fail('bad_claims', 'aud must be a string or an array');
    }
    let found = false;
    for (let i = 0; i < list.length; i++) {
      if (typeof list[i] === 'string' && listHas(audiences, list[i])) {
        found = true;
      }
    }
    if (!found) {
      return fail('bad_audience', 'audience not accepted');
    }
  }
  const required = policy.requiredClaims || [];
  for (let i = 0; i < required.length; i++) {
    if (!hasOwn(claims, required[i]) || claims[required[i]] === null) {
      return fail('missing_claim', 'missing claim ' + required[i]);
    }
  }
  const values = policy.claimValues;
  if (values) {
    for (let i = 0; i < values.length; i++) {
      const bad = claimValueFail(claims, values[i]);
      if (bad !== null) {
        return bad;
      }
    }
  }
  return null;
}

// One required claim value; the detail names the claim (a configured name), never its value.
export function claimValueFail(claims: JsonObject, rule: ClaimValueRule): JwtFail | null {
  const name = rule.claim;
  if (!hasOwn(claims, name) || claims[name] === null) {
    return fail('missing_claim', 'missing claim ' + name);
  }
  const v = claims[name];
  const oneOf = rule.oneOf;
  if (oneOf && oneOf.length > 0 && !listHas(oneOf, v)) {
    return fail('bad_claims', 'claim ' + name + ' has a value not accepted here');
  }
  const contains = rule.contains;
  if (contains && contains.length > 0) {
    let items: ArrayLike<unknown> | null = null;
    if (Array.isArray(v)) {
      items = v;
    } else if (typeof v === 'string') {
      items = v.split(' ');
    }
    if (items === null) {
      return fail('bad_claims', 'claim ' + name + ' is not a list or a space-separated string');
    }
    for (let i = 0; i < contains.length; i++) {
      if (!listHas(items, contains[i])) {
        return fail('bad_claims', 'claim ' + name + ' lacks a required value');
      }
    }
  }
  return null;
}

function success(parsed: ParsedJwt): JwtOk {
  const kid = parsed.header.kid;
  return {
    ok: true,
    header: parsed.header,
    claims: parsed.claims,
    payloadSegment: parsed.payloadSegment,
    kid: typeof kid === 'string' ? kid : null,
  };
}

// Synchronous verification for providers that accept HS256 only (usable from js_set, no
// subrequest): the same parse, header/key and claim checks as verifyJwt; any other alg fails.
export function verifyJwtSync(token: string, policy: JwtPolicy, nowSec: number): JwtResult {
  const maxLength = typeof policy.maxLength === 'number' ? policy.maxLength : DEFAULT_MAX_TOKEN_LENGTH;
  const parsed = parseJwt(token, maxLength);
  if (!parsed.ok) {
    return parsed;
  }
  const key = selectKey(parsed.header, policy);
  if ('ok' in key) {
    return key;
  }
  if (parsed.header.alg !== 'HS256') {
    return fail('alg_not_allowed', 'only HS256 is verified synchronously');
  }
  if (!hs256Matches(parsed, key)) {
    return fail('bad_signature', 'signature does not verify');
  }
  const bad = checkClaims(parsed.claims, policy, nowSec);
  return bad !== null ? bad : success(parsed);
}

// Full verification: parse, header/key checks, signature, claims.
export async function verifyJwt(token: string, policy: JwtPolicy, nowSec: number): Promise<JwtResult> {
  const maxLength = typeof policy.maxLength === 'number' ? policy.maxLength : DEFAULT_MAX_TOKEN_LENGTH;
  const parsed = parseJwt(token, maxLength);
  if (!parsed.ok) {
    return parsed;
  }
  const key = selectKey(parsed.header, policy);
  if ('ok' in key) {
    return key;
  }
  const good = await verifySignature(parsed, key);
  if (!good) {
    return fail('bad_signature', 'signature does not verify');
  }
  const bad = checkClaims(parsed.claims, policy, nowSec);
  return bad !== null ? bad : success(parsed);
}
