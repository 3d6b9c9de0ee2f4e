// auth.jwt_cache in gateway.yaml: defaults, `false`, refused sizes/ttls, and what the build
// emits for each JWT path (njs calls per route in the location comment and the manifest).
// Through real nginx: tests/auth/jwt-cache.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const SECRET = 'a-long-enough-hmac-secret-0123456789';
const JWKS = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', kid: 'e', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] });

function build(cache: string) {
  const dir = mkdtempSync(path.join(tmpdir(), 'gw-jwtcache-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'jwks.json'), JWKS);
  writeFileSync(
    path.join(dir, 'gateway.yaml'),
    `version: 1
global: { status: false }
listeners: [{ name: main, port: 8080 }]
upstreams: { app: { servers: [127.0.0.1:9000] } }
auth:
${cache}
  jwt:
    hs: { algorithms: [HS256], secret_env: S }
    es: { algorithms: [ES256], jwks_file: jwks.json }
routes:
  - { name: hs, match: { prefix: /hs/ }, upstream: app, auth: { methods: [jwt], jwt_provider: hs } }
  - { name: es, match: { prefix: /es/ }, upstream: app, auth: { methods: [jwt], jwt_provider: es } }
`,
  );
  return compile(path.join(dir, 'gateway.yaml'), { env: { S: SECRET } });
}

describe('auth.jwt_cache', () => {
  it('is on by default: 2m, 5m; generation and ttl in the preload object; one js_set before the subrequest', () => {
    const r = build('');
    expect(r.ok, r.diagnostics.map((d) => d.message).join('\n')).toBe(true);
    const auth = r.files!['conf.d/05-auth.conf'];
    // the whole line: the zone never gets a state= file (its keys are live bearer tokens), and
    // always has timeout=, without which the dict would never expire a timed entry, which the
    // fast paths serve without a clock (njs/lib/jwtcache.ts)
    expect(auth).toContain('js_shared_dict_zone zone=gw_jwt_cache:2m timeout=300s evict;');
    expect(auth).toContain('js_set $gw_jwt_cached gateway.jwtCached;');
    const preload = JSON.parse(r.files!['njs/auth.json']);
    for (const p of ['hs', 'es']) {
      expect(preload.jwt[p].cacheTtl).toBe(300);
      expect(preload.jwt[p].cacheGen).toMatch(/^[A-Za-z0-9_-]{22}$/);
    }
    expect(preload.jwt.hs.cacheGen).not.toBe(preload.jwt.es.cacheGen);
    const servers = r.files!['conf.d/40-servers.conf'];
    expect(servers).toContain('# route hs (routes[0]); njs calls per request: at most 1 (auth 1)');
    // the cache lookup, plus the subrequest's handler on a miss
    expect(servers).toContain('# route es (routes[1]); njs calls per request: at most 2 (auth 2)');
    expect(servers).toMatch(/if \(\$gw_jwt_cached = ok\) \{\s*return 418;/);
    const manifest = JSON.parse(r.files!['manifest.json']);
    expect(manifest.routes.map((x: { njsCalls: number }) => x.njsCalls)).toEqual([1, 2]);
  });

  it('size and ttl are configurable', () => {
    const r = build('  jwt_cache: { size: 64k, ttl: 90s }');
    expect(r.ok).toBe(true);
    expect(r.files!['conf.d/05-auth.conf']).toContain('js_shared_dict_zone zone=gw_jwt_cache:64k timeout=90s evict;');
    expect(JSON.parse(r.files!['njs/auth.json']).jwt.es.cacheTtl).toBe(90);
    expect(JSON.parse(build('  jwt_cache: { ttl: 1h }').files!['njs/auth.json']).jwt.hs.cacheTtl).toBe(3600);
  });

  it('false turns it off: no zone, no cache lookup, every token verified in full', () => {
    const r = build('  jwt_cache: false');
    expect(r.ok).toBe(true);
    const auth = r.files!['conf.d/05-auth.conf'];
    expect(auth).not.toContain('js_shared_dict_zone');
    expect(auth).not.toContain('gw_jwt_cached');
    expect(r.files!['conf.d/40-servers.conf']).toContain('# route es (routes[1]); njs calls per request: at most 1 (auth 1)');
    const preload = JSON.parse(r.files!['njs/auth.json']);
    expect(preload.jwt.es.cacheGen).toBeUndefined();
    expect(preload.jwt.es.cacheTtl).toBeUndefined();
  });

  it('refuses a zone below 32k or over 1024m, a zero or unit-less size, a zero ttl and more than 24h', () => {
    for (const good of ['{ size: 32k }', '{ size: 1024m }', '{ size: 999m }']) expect(build(`  jwt_cache: ${good}`).ok, good).toBe(true);
    for (const bad of ['{ size: 16k }', '{ size: 1025m }', '{ size: 9999m }', '{ size: 0m }', '{ size: 1024 }', '{ ttl: 0s }', '{ ttl: 25h }', '{ ttl: 5d }', 'true', '{ other: 1 }']) {
      const r = build(`  jwt_cache: ${bad}`);
      expect(r.ok, bad).toBe(false);
      expect(r.diagnostics.some((d) => d.at?.path?.startsWith('auth.jwt_cache')), bad).toBe(true);
    }
  });
});
