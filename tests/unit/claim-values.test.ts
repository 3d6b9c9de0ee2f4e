// claim_values on JWT providers and routes: the refusals (GW284-GW286), the preload object (a
// route narrowing its provider verifies with a variant of it, whose cache generation differs,
// while providers without values keep theirs), njs call counts unchanged, and the njs check
// itself (exact, one of, contains on a list or a space-separated string). Through real nginx:
// tests/auth/claim-values.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { checkClaims, claimValueFail } from '../../njs/lib/jwt.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const SECRET = 'a-long-enough-hmac-secret-0123456789';
const JWKS = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', kid: 'e', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] });

function build(providerExtra: string, routes: string) {
  const dir = mkdtempSync(path.join(tmpdir(), 'gw-claims-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'jwks.json'), JWKS);
  writeFileSync(
    path.join(dir, 'gateway.yaml'),
    `version: 1
global: { status: false }
listeners: [{ name: main, port: 8080 }]
upstreams: { app: { servers: [127.0.0.1:9000] } }
auth:
  api_keys: { file: keys.yaml }
  jwt:
    hs: { algorithms: [HS256], secret_env: S${providerExtra} }
    es: { algorithms: [ES256], jwks_file: jwks.json }
routes:
${routes}
`,
  );
  writeFileSync(path.join(dir, 'keys.yaml'), 'version: 1\nkeys: []\n');
  return compile(path.join(dir, 'gateway.yaml'), { env: { S: SECRET } });
}

const PLAIN = `  - { name: hs, match: { prefix: /hs/ }, upstream: app, auth: { methods: [jwt], jwt_provider: hs } }
  - { name: es, match: { prefix: /es/ }, upstream: app, auth: { methods: [jwt], jwt_provider: es } }`;
const NARROW = `  - { name: hs-chat, match: { prefix: /hs-chat/ }, upstream: app, auth: { methods: [jwt], jwt_provider: hs, claim_values: { scope: { contains: chat:write } } } }
  - { name: es-chat, match: { prefix: /es-chat/ }, upstream: app, auth: { methods: [jwt], jwt_provider: es, claim_values: { scope: { contains: chat:write } } } }
  - { name: es-chat2, match: { prefix: /es-chat2/ }, upstream: app, auth: { methods: [jwt], jwt_provider: es, claim_values: { scope: { contains: chat:write } } } }`;

type Preload = { jwt: Record<string, { cacheGen: string; claimValues?: unknown[] }> };

describe('claim_values build output', () => {
  it('a narrowing route verifies with a variant of its provider: provider values plus its own, another cache generation', () => {
    const plain = build(', claim_values: { typ: access }', PLAIN);
    const both = build(', claim_values: { typ: access }', `${PLAIN}\n${NARROW}`);
    expect(both.diagnostics.filter((x) => x.severity === 'error').map(formatDiagnostic)).toEqual([]);
    const a = JSON.parse(plain.files!['njs/auth.json']) as Preload;
    const b = JSON.parse(both.files!['njs/auth.json']) as Preload;
    // the plain providers are untouched by routes narrowing them
    expect(b.jwt.hs).toEqual(a.jwt.hs);
    expect(b.jwt.es).toEqual(a.jwt.es);
    expect(a.jwt.es.claimValues).toBeUndefined();
    expect(a.jwt.hs.claimValues).toEqual([{ claim: 'typ', oneOf: ['access'] }]);
    const variants = Object.keys(b.jwt).filter((n) => n.includes('.')).sort();
    // two routes with the same narrowing share one variant (and its cache entries)
    expect(variants).toHaveLength(2);
    const hsv = variants.find((n) => n.startsWith('hs.'))!;
    const esv = variants.find((n) => n.startsWith('es.'))!;
    expect(b.jwt[hsv].claimValues).toEqual([{ claim: 'typ', oneOf: ['access'] }, { claim: 'scope', contains: ['chat:write'] }]);
    expect(b.jwt[esv].claimValues).toEqual([{ claim: 'scope', contains: ['chat:write'] }]);
    expect(b.jwt[hsv].cacheGen).not.toBe(b.jwt.hs.cacheGen);
    expect(b.jwt[esv].cacheGen).not.toBe(b.jwt.es.cacheGen);
    const servers = both.files!['conf.d/40-servers.conf'];
    expect(servers).toContain(`set $gw_jwt_provider "${hsv}";`);
    expect(servers).toContain(`auth_request "/_gw_auth/jwt/${esv}";`);
    expect(servers).toContain(`location = "/_gw_auth/jwt/${esv}"`);
  });

  it('narrowing adds no njs call: the manifest counts the same calls as on the plain route', () => {
    const r = build('', `${PLAIN}\n${NARROW}`);
    const calls = Object.fromEntries((JSON.parse(r.files!['manifest.json']).routes as { name: string; njsCalls: number }[]).map((x) => [x.name, x.njsCalls]));
    expect(calls['hs-chat']).toBe(calls.hs);
    expect(calls['es-chat']).toBe(calls.es);
    expect(calls.hs).toBe(1);
    expect(calls.es).toBe(2); // the cache-first js_set and the subrequest on a miss, as before
  });
});

describe('claim_values rules', () => {
  const lines = (providerExtra: string, routes: string) => build(providerExtra, routes).diagnostics.map(formatDiagnostic);

  it('GW284 claim_values on a route that does not accept JWTs', () => {
    const out = lines('', '  - { name: k, match: { prefix: /k/ }, upstream: app, auth: { methods: [api_key], claim_values: { typ: access } } }');
    expect(out.some((l) => /error GW284 routes\[0\]\.auth\.claim_values: claim_values apply to JWTs/.test(l)), out.join('\n')).toBe(true);
  });

  it('GW285 warns that an API key on the same route is not checked against them', () => {
    const out = lines('', '  - { name: k, match: { prefix: /k/ }, upstream: app, auth: { methods: [api_key, jwt], jwt_provider: hs, claim_values: { typ: access } } }');
    expect(out.some((l) => /warning GW285 routes\[0\]\.auth\.claim_values: an API key carries no claims/.test(l)), out.join('\n')).toBe(true);
  });

  it('GW286 a contains value with a space could never match a space-separated scope', () => {
    const out = lines(', claim_values: { scope: { contains: ["chat:write files"] } }', PLAIN);
    expect(out.some((l) => /error GW286 auth\.jwt\.hs\.claim_values\.scope\.contains: "chat:write files" holds a space/.test(l)), out.join('\n')).toBe(true);
  });
});

describe('the njs check', () => {
  const NOW = 1_800_000_000;
  it('exact, one of (typed), contains on a list or a space-separated string', () => {
    expect(claimValueFail({ typ: 'access' }, { claim: 'typ', oneOf: ['access'] })).toBeNull();
    expect(claimValueFail({ typ: 'refresh' }, { claim: 'typ', oneOf: ['access'] })).toMatchObject({ reason: 'bad_claims' });
    expect(claimValueFail({}, { claim: 'typ', oneOf: ['access'] })).toMatchObject({ reason: 'missing_claim' });
    expect(claimValueFail({ typ: null }, { claim: 'typ', oneOf: ['access'] })).toMatchObject({ reason: 'missing_claim' });
    expect(claimValueFail({ v: true }, { claim: 'v', oneOf: ['true'] })).toMatchObject({ reason: 'bad_claims' });
    expect(claimValueFail({ v: true }, { claim: 'v', oneOf: [true] })).toBeNull();
    expect(claimValueFail({ scope: 'a chat:write b' }, { claim: 'scope', contains: ['chat:write'] })).toBeNull();
    expect(claimValueFail({ scope: ['chat:write', 'x'] }, { claim: 'scope', contains: ['chat:write', 'x'] })).toBeNull();
    expect(claimValueFail({ scope: 'chat:write' }, { claim: 'scope', contains: ['chat:write', 'x'] })).toMatchObject({ reason: 'bad_claims' });
    expect(claimValueFail({ scope: 'chat:writes' }, { claim: 'scope', contains: ['chat:write'] })).toMatchObject({ reason: 'bad_claims' });
    expect(claimValueFail({ scope: { a: 1 } }, { claim: 'scope', contains: ['a'] })).toMatchObject({ reason: 'bad_claims' });
  });

  it('checkClaims applies every rule after the registered-claim checks', () => {
    const policy = { algorithms: ['HS256'], keys: [], claimValues: [{ claim: 'typ', oneOf: ['access'] }, { claim: 'scope', contains: ['chat:write'] }] };
    expect(checkClaims({ exp: NOW + 10, typ: 'access', scope: 'chat:write' }, policy, NOW)).toBeNull();
    expect(checkClaims({ exp: NOW + 10, typ: 'refresh', scope: 'chat:write' }, policy, NOW)).toMatchObject({ reason: 'bad_claims' });
    expect(checkClaims({ exp: NOW - 10, typ: 'refresh' }, policy, NOW)).toMatchObject({ reason: 'expired' });
  });
});
