// auth: in gateway.yaml: normalization, rules, build inputs (keys store, JWKS, secrets) and
// what the renderer emits. Through real nginx: tests/auth/.
import { FEATURES } from '../../src/features/index.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compile, type CompileOptions } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const SECRET = 'a-long-enough-hmac-secret-0123456789';

function project(yaml: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'gw-auth-unit-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'gateway.yaml'), yaml);
  for (const [rel, text] of Object.entries(files)) writeFileSync(path.join(dir, rel), text);
  return path.join(dir, 'gateway.yaml');
}

function keysFile(): { text: string; key: string } {
  const store: KeyFile = { version: 1, keys: [] };
  const { key } = createKey(store, { name: 'acme', role: 'admin', tier: 'pro' }, new Date('2026-01-01T00:00:00Z'));
  return { text: serializeKeys(store), key };
}

const base = (extra: string, route = '') => `version: 1
global: { status: false }
listeners: [{ name: main, port: 8080 }]
upstreams: { app: { servers: [127.0.0.1:9000] } }
${extra}
routes:
  - name: r
    match: { prefix: /r/ }
    upstream: app
${route}
`;

function build(configPath: string, opts: CompileOptions = {}) {
  const r = compile(configPath, opts);
  return { ...r, text: r.diagnostics.map(formatDiagnostic).join('\n') };
}

describe('njs module only when used', () => {
  it('no auth: no load_module, no njs files', () => {
    const r = build(project(base('')));
    expect(r.ok, r.text).toBe(true);
    expect(r.files!['nginx.conf']).not.toContain('ngx_http_js_module');
    expect(Object.keys(r.files!).filter((f) => f.startsWith('njs/') || f.includes('auth') || f.includes('keys'))).toEqual([]);
    expect(JSON.parse(r.files!['manifest.json']).modules.njs).toBe(false);
  });

  it('auth: module, bundle, key map and auth conf', () => {
    const k = keysFile();
    const r = build(project(base('auth: { api_keys: { file: keys.yaml } }', '    auth: api_key'), { 'keys.yaml': k.text }));
    expect(r.ok, r.text).toBe(true);
    expect(r.files!['nginx.conf']).toContain('load_module modules/ngx_http_js_module.so;');
    expect(r.files!['nginx.conf']).toContain('include conf.d/05-auth.conf;');
    expect(r.files!['njs/gateway.js']).toMatch(/export default \w+;\s*$/);
    expect(r.files!['conf.d/keys.map']).toContain('"acme|admin|pro|0"');
    expect(r.files!['conf.d/keys.map']).not.toContain(k.key);
    expect(r.files!['njs/auth.json']).toBeUndefined(); // no JWT provider: no preload object
    expect(r.files!['conf.d/05-auth.conf']).not.toContain('js_preload_object');
    expect(JSON.parse(r.files!['manifest.json']).modules.njs).toBe(true);
  });

  it('API-key fast path: one map picks the route\'s key header, one the bearer token of key syntax', () => {
    const yaml = base('auth: { api_keys: { file: keys.yaml } }', '    auth: api_key').replace(
      /routes:\n/,
      'routes:\n  - { name: admin, match: { prefix: /admin/ }, upstream: app, auth: { methods: [api_key], key_header: X-Admin-Key } }\n',
    );
    const r = build(project(yaml, { 'keys.yaml': keysFile().text }));
    expect(r.ok, r.text).toBe(true);
    const conf = r.files!['conf.d/05-auth.conf'];
    expect(conf).toContain('map $gw_key_header $gw_key_presented {\n    default "";\n    "X-API-Key" $http_x_api_key;\n    "X-Admin-Key" $http_x_admin_key;\n}');
    expect(conf).toContain('map $http_authorization $gw_key_bearer {\n    default "";\n    "~^[Bb][Ee][Aa][Rr][Ee][Rr] +(?<gw_key_cand>[A-Za-z0-9._~+/=-]{8,256})$" $gw_key_cand;\n}');
    expect(conf).not.toContain('$gw_key_fast');
    expect(r.files!['conf.d/40-servers.conf']).toContain('set $gw_key_header "X-Admin-Key";');
  });
});

describe('inputs', () => {
  it('the keys file and secrets are part of the input hash', () => {
    const k = keysFile();
    const yaml = base('auth:\n  api_keys: { file: keys.yaml }\n  jwt: { hs: { algorithms: [HS256], secret_file: hs.secret } }', '    auth: { methods: [api_key, jwt] }');
    const cfg = project(yaml, { 'keys.yaml': k.text, 'hs.secret': `${SECRET}\n` });
    const a = build(cfg);
    expect(a.ok, a.text).toBe(true);
    writeFileSync(path.join(path.dirname(cfg), 'keys.yaml'), keysFile().text);
    const b = build(cfg);
    expect(b.model!.source.hash).not.toBe(a.model!.source.hash);
    writeFileSync(path.join(path.dirname(cfg), 'hs.secret'), `${SECRET}-rotated\n`);
    const c = build(cfg);
    expect(c.model!.source.hash).not.toBe(b.model!.source.hash);
    expect(c.inputFiles.map((f) => path.basename(f)).sort()).toEqual(['gateway.yaml', 'hs.secret', 'keys.yaml']);
    // the secret (one trailing newline dropped) lives in njs/auth.json only
    const b64 = Buffer.from(`${SECRET}-rotated`).toString('base64url');
    expect(JSON.parse(c.files!['njs/auth.json']).jwt.hs.keys[0].k).toBe(b64);
    for (const [rel, text] of Object.entries(c.files!)) if (rel !== 'njs/auth.json') expect(text, rel).not.toContain(b64);
  });

  it('a missing keys file is an error that says how to create one', () => {
    const r = build(project(base('auth: { api_keys: { file: keys.yaml } }', '    auth: api_key')));
    expect(r.ok).toBe(false);
    expect(r.text).toMatch(/gateway\.yaml:5:\d+ error GW379 auth\.api_keys\.file: cannot read keys file .*keys\.yaml: ENOENT \(create one with: gatewayctl keys create --file .*keys\.yaml --name NAME\)/);
  });

  it('a corrupt keys file is reported at its own line and column', () => {
    const r = build(project(base('auth: { api_keys: { file: keys.yaml } }', '    auth: api_key'), { 'keys.yaml': 'version: 1\nkeys:\n  - id: [unclosed\n' }));
    expect(r.ok).toBe(false);
    expect(r.text).toMatch(/keys\.yaml:\d+:\d+ error GW379 keys file: /);
  });

  it('the secret comes from the environment at build time', () => {
    const cfg = project(base('auth: { jwt: { hs: { algorithms: [HS256], secret_env: GW_UNIT_SECRET } } }', '    auth: jwt'));
    expect(build(cfg, { env: {} }).text).toMatch(/GW379 auth\.jwt\.hs\.secret_env: environment variable GW_UNIT_SECRET/);
    expect(build(cfg, { env: { GW_UNIT_SECRET: 'short' } }).text).toMatch(/GW379 auth\.jwt\.hs: JWT provider hs: secrets\[0\] is shorter than 32 bytes/);
    const ok = build(cfg, { env: { GW_UNIT_SECRET: SECRET } });
    expect(ok.ok, ok.text).toBe(true);
  });
});

describe('rules', () => {
  const limits = 'limits: { rate: { per_client: { key: client_id, rate: 5r/s } } }';
  it('client_id zones are valid on authenticated routes only (GW313)', () => {
    const k = keysFile();
    const ok = build(project(base(`${limits}\nauth: { api_keys: { file: keys.yaml } }`, '    auth: api_key\n    rate_limits: [per_client]'), { 'keys.yaml': k.text }));
    expect(ok.ok, ok.text).toBe(true);
    const noAuth = build(project(base(limits, '    rate_limits: [per_client]')));
    expect(noAuth.text).toContain('GW313 limits.rate.per_client.key: key client_id needs authentication');
  });

  it('route auth shorthand and schema errors', () => {
    const bad = build(project(base('', '    auth: { methods: [password] }')));
    expect(bad.text).toMatch(/GW201 routes\[0\]\.auth\.methods\[0\]: must be one of: "api_key", "jwt"/);
    const none = build(project(base('', '    auth: none')));
    expect(none.ok, none.text).toBe(true);
    expect(none.model!.routes[0].auth).toBeNull();
  });
});

describe('render', () => {
  it('tiered zones key on a per-tier map; JWT routes needing WebCrypto hand over to a named location', () => {
    const yaml = base(
      'limits: { rate: { free: { key: client_id, tier: free, rate: 1r/s } } }\nauth: { jwt: { main: { algorithms: [HS256, HS512], secret_env: S, tier_claim: tier } } }',
      '    auth: jwt\n    rate_limits: [free]',
    );
    const r = build(project(yaml), { env: { S: SECRET } });
    expect(r.ok, r.text).toBe(true);
    expect(r.files!['conf.d/10-limits.conf']).toContain('limit_req_zone $gw_tier_key_free zone=gw_rl_free:10m rate=1r/s;');
    expect(r.files!['conf.d/05-auth.conf']).toMatch(/map \$gw_client_tier \$gw_tier_key_free \{\n\s+default "";\n\s+"~\^free\$" \$gw_client_id;/);
    const servers = r.files!['conf.d/40-servers.conf'];
    const pub = servers.slice(servers.indexOf('location "/r/"'), servers.indexOf('location @gw_route_r_auth'));
    expect(pub).toContain('auth_request "/_gw_auth/jwt/main";');
    expect(pub).toContain('try_files "/.gatewayctl-no-such-file" @gw_route_r_auth;');
    expect(pub).not.toContain('limit_req zone=gw_rl_free'); // before auth the client is unknown
    const named = servers.slice(servers.indexOf('location @gw_route_r_auth'));
    expect(named).toMatch(/^location @gw_route_r_auth \{\n\s+set \$gw_route "r";\n\s+limit_req zone=gw_rl_free nodelay;\n\s+proxy_pass http:\/\/app;/);
    expect(servers).toContain('location = "/_gw_auth/jwt/main" {');
  });

  it('HS256-only providers verify in the route location: one js_set, no subrequest, limits in place', () => {
    const yaml = base(
      'limits: { rate: { free: { key: client_id, tier: free, rate: 1r/s } } }\nauth: { jwt: { main: { algorithms: [HS256], secret_env: S, tier_claim: tier } } }',
      '    auth: jwt\n    rate_limits: [free]',
    );
    const r = build(project(yaml), { env: { S: SECRET } });
    expect(r.ok, r.text).toBe(true);
    expect(r.files!['conf.d/05-auth.conf']).toContain('js_set $gw_jwt gateway.jwtSync;');
    const servers = r.files!['conf.d/40-servers.conf'];
    const pub = servers.slice(servers.indexOf('location "/r/"'));
    const body = pub.slice(0, pub.indexOf('\n    }\n'));
    expect(body).toContain('set $gw_jwt_provider "main";');
    expect(body).toContain('limit_req zone=gw_rl_free nodelay;');
    expect(body).toMatch(/if \(\$gw_jwt != ok\) \{\n\s+return 401;/);
    expect(servers).not.toContain('auth_request');
    expect(servers).not.toContain('/_gw_auth/jwt/main');
    expect(servers).not.toContain('@gw_route_r_auth');
  });
});

describe('gatewayctl diff never shows HMAC secrets', () => {
  it('njs/auth.json is compared with secrets replaced by short hashes', async () => {
    const { compareFiles } = await import('../../src/diff/files.ts');
    const cfg = project(base('auth: { jwt: { hs: { algorithms: [HS256], secret_env: S } } }', '    auth: jwt'));
    const a = build(cfg, { env: { S: SECRET } });
    const b = build(cfg, { env: { S: `${SECRET}-rotated` } });
    const diffs = compareFiles(a.files!, b.files!, FEATURES);
    const preload = diffs.find((x) => x.path === 'njs/auth.json');
    expect(preload?.status).toBe('modified');
    expect(preload!.diff).toMatch(/-\s+"k": "<secret sha256:[0-9a-f]{12}>"/);
    const all = diffs.map((x) => x.diff).join('\n');
    for (const s of [SECRET, `${SECRET}-rotated`]) {
      expect(all).not.toContain(s);
      expect(all).not.toContain(Buffer.from(s).toString('base64url'));
    }
  });
});
