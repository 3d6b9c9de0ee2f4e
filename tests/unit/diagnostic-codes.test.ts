// Every diagnostic code the sources can emit is exercised by a test: one minimal config per
// code here for those no golden case or feature suite reaches, each asserting the code, the
// file:line:col and the key path. The last case keeps it that way for codes added later.
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const BASE = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  api:
    servers: [127.0.0.1:9001]
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: api
`;

function lines(text: string): string[] {
  return compile('gateway.yaml', { text, env: {} }).diagnostics.map(formatDiagnostic);
}

function expectLine(text: string, expected: string | RegExp): void {
  const got = lines(text);
  if (typeof expected === 'string') expect(got, got.join('\n')).toContain(expected);
  else expect(got.some((l) => expected.test(l)), got.join('\n')).toBe(true);
}

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'gw-codes-'));
}

describe('diagnostic codes without another test', () => {
  it('GW100 a config file that cannot be read names the file and the reason', () => {
    const missing = path.join(tempDir(), 'absent.yaml');
    const d = compile(missing, {}).diagnostics;
    expect(d.map((x) => x.code)).toEqual(['GW100']);
    expect(d[0].message).toContain('ENOENT');
  });

  it('GW104 YAML anchors and aliases are refused at the alias', () => {
    const t = BASE.replace('[127.0.0.1:9001]', '&srv [127.0.0.1:9001]') + '  - name: b\n    match: { prefix: /b/ }\n    upstream: *srv\n';
    expectLine(t, /^gateway\.yaml:\d+:\d+ error GW104 .*aliases\/anchors are not supported/);
  });

  it('GW105 include must be a list, and an unreadable include is positioned at its entry', () => {
    expectLine(`include: other.yaml\n${BASE}`, /^gateway\.yaml:1:10 error GW105 include: include must be a list of file paths$/);
    const dir = tempDir();
    const main = path.join(dir, 'gateway.yaml');
    writeFileSync(main, `include: [missing.yaml]\n${BASE}`);
    const d = compile(main, { env: {} }).diagnostics.map(formatDiagnostic);
    expect(d.some((l) => /gateway\.yaml:1:11 error GW105 include\[0\]: cannot read included file missing\.yaml: ENOENT/.test(l)), d.join('\n')).toBe(true);
  });

  it('GW106 a key defined both in an included file and the including file', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'limits.yaml'), 'limits:\n  rate:\n    a: { key: client_ip, rate: 1r/s }\n');
    const main = path.join(dir, 'gateway.yaml');
    writeFileSync(main, `include: [limits.yaml]\n${BASE}limits:\n  rate:\n    a: { key: client_ip, rate: 2r/s }\n`);
    const d = compile(main, { env: {} }).diagnostics.map(formatDiagnostic);
    expect(d.some((l) => / error GW106 limits\.rate\.a: limits\.rate\.a is defined both here and in the including file$/.test(l)), d.join('\n')).toBe(true);
  });

  it('GW323 hash_key without consistent hashing is ignored, with a warning', () => {
    const t = BASE.replace('  api:\n', '  api:\n    balance: least_conn\n    hash_key: { header: X-User }\n');
    expectLine(t, 'gateway.yaml:8:15 warning GW323 upstreams.api.hash_key: hash_key is ignored with balance: least_conn');
  });

  it('GW325 the same server twice in one upstream', () => {
    expectLine(BASE.replace('[127.0.0.1:9001]', '[127.0.0.1:9001, 127.0.0.1:9001]'), 'gateway.yaml:7:31 error GW325 upstreams.api.servers[1]: duplicate server 127.0.0.1:9001');
  });

  it('GW326 an upstream no route uses', () => {
    expectLine(BASE.replace('routes:', '  spare:\n    servers: [127.0.0.1:9002]\nroutes:'), 'gateway.yaml:8:3 warning GW326 upstreams.spare: upstream "spare" is not used by any route');
  });

  it('GW331 a route with neither upstream nor respond, and one with both', () => {
    expectLine(BASE.replace('    upstream: api\n', ''), 'gateway.yaml:9:5 error GW331 routes[0]: route needs an upstream or a respond block');
    expectLine(BASE.replace('    upstream: api\n', '    upstream: api\n    respond: { status: 200, body: ok }\n'), 'gateway.yaml:12:14 error GW331 routes[0].respond: route has both upstream and respond; choose one');
  });

  it('GW334 a respond route cannot stream', () => {
    expectLine(BASE.replace('    upstream: api\n', '    respond: { status: 200, body: ok }\n    streaming: true\n'), 'gateway.yaml:11:14 error GW334 routes[0].respond: respond routes cannot use cache, streaming, websocket or retries');
  });

  it('GW337 key_includes_body where POST is not cached', () => {
    const t = BASE.replace('routes:', 'caches:\n  c: { size: 1m }\nroutes:') + '    cache: { zone: c, methods: [GET], key_includes_body: true }\n';
    expectLine(t, /^gateway\.yaml:14:58 warning GW337 routes\[0\]\.cache\.key_includes_body: /);
  });

  it('GW338 retries on a route that only accepts non-idempotent methods', () => {
    const t = BASE.replace('{ prefix: /a/ }', '{ prefix: /a/, methods: [POST] }') + '    retries: { tries: 2 }\n';
    expectLine(t, 'gateway.yaml:12:14 warning GW338 routes[0].retries: retries never apply: the route only accepts non-idempotent methods (set non_idempotent: true to allow)');
  });

  it('GW339 an exact route on the health endpoint', () => {
    expectLine(BASE.replace('{ prefix: /a/ }', '{ exact: /health }'), 'gateway.yaml:10:12 error GW339 routes[0].match: path /health is the gateway\'s own health endpoint (global.health)');
  });

  it('GW341 a route host outside the listener\'s server_names', () => {
    const t = BASE.replace('    port: 8080\n', '    port: 8080\n    server_names: [api.example.com]\n').replace('{ prefix: /a/ }', '{ prefix: /a/, host: other.example.com }');
    expectLine(t, 'gateway.yaml:11:33 warning GW341 routes[0].match.host: host other.example.com is not among the listener\'s server_names; a server block is added for it');
  });

  it('GW350 acme: true without a top-level tls.acme section', () => {
    const t = BASE.replace('    port: 8080\n', '    port: 8443\n    tls: { acme: true }\n');
    expectLine(t, /^gateway\.yaml:5:18 error GW350 listeners\[0\]\.tls\.acme: acme: true needs a top-level tls\.acme section/);
  });

  it('GW362 a models route without a models catalogue', () => {
    expectLine(BASE.replace('    upstream: api\n', '    models: route\n'), /^gateway\.yaml:11:13 error GW362 routes\[0\]\.models: models: route needs a top-level models: list$/);
  });

  it('GW377 auth configured but used by no route', () => {
    const t = `${BASE}auth:\n  api_keys: { file: keys.yaml }\n`;
    expectLine(t, /^gateway\.yaml:12:\d+ warning GW377 auth: auth is configured but no route uses it/);
  });

  it('GW380 a cached route behind auth shares responses between clients', () => {
    const t = BASE.replace('routes:', 'caches:\n  c: { size: 1m }\nroutes:') + '    auth: { methods: [api_key] }\n    cache: { zone: c }\nauth:\n  api_keys: { file: keys.yaml }\n';
    expectLine(t, /^gateway\.yaml:15:12 warning GW380 routes\[0\]\.cache: cached responses are shared by every authenticated client/);
  });

  it('GW391 a raw nginx snippet with unbalanced braces', () => {
    expectLine(`${BASE}    unsafe_nginx_route: "if ($x) { return 403;"\n`, /^gateway\.yaml:12:5 error GW391 routes\[0\]\.unsafe_nginx_route: raw nginx snippet has unbalanced braces$/);
  });
});

describe('codes from render and check', () => {
  it('GW501 brotli requested for a target nginx without the module: gzip only, with a warning', () => {
    const t = BASE.replace('listeners:', 'global:\n  compression: { gzip: true, brotli: true }\nlisteners:');
    const r = compile('gateway.yaml', { text: t, env: {}, availableModules: { brotli: false } });
    expect(r.ok).toBe(true);
    expect(r.diagnostics.map(formatDiagnostic)).toContain('- warning GW501 brotli requested but ngx_http_brotli_filter_module is not available for the target nginx; building with gzip only');
    expect(r.files!['nginx.conf']).not.toContain('brotli');
  });

  it('GW400 (a render error without a position) is no longer what api_key together with jwt on a body-reading route gets: it builds', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'keys.yaml'), 'version: 1\nkeys: []\n');
    writeFileSync(path.join(dir, 'secret'), 'a'.repeat(48));
    const t = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  llm:
    servers: [127.0.0.1:9001]
models:
  - { id: m1, upstream: llm }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    auth: { methods: [api_key, jwt] }
auth:
  api_keys: { file: keys.yaml }
  jwt:
    main: { algorithms: [HS256], secret_file: secret }
`;
    const main = path.join(dir, 'gateway.yaml');
    writeFileSync(main, t);
    const r = compile(main, { env: {} });
    expect(r.diagnostics.filter((x) => x.severity === 'error').map(formatDiagnostic)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.files!['conf.d/40-servers.conf']).toContain('location @gw_next_chat_key {');
  });

  it('GW410 errors: gateway on a models: route route is refused at the route (its njs errors are OpenAI-shaped)', () => {
    const t = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  llm:
    servers: [127.0.0.1:9001]
models:
  - { id: m1, upstream: llm }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    errors: gateway
  - name: list
    match: { exact: /v1/models, methods: [GET] }
    models: list
    errors: gateway
`;
    const got = lines(t);
    expect(got.filter((l) => l.includes('GW410')), got.join('\n')).toEqual([
      'gateway.yaml:14:13 error GW410 routes[0].errors: models: route is OpenAI-compatible: its errors (model_not_found, invalid_json, …) are OpenAI-shaped; remove errors: gateway',
    ]);
  });

  it('GW411-GW414 traffic: unknown upstreams, unsupported combinations, claims without JWT, bad values and splits', () => {
    const t = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  blue: { servers: [127.0.0.1:9001] }
  green: { servers: [127.0.0.1:9002] }
  by_body:
    balance: consistent_hash
    hash_key: { body_field: user }
    servers: [127.0.0.1:9003]
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: blue
    traffic:
      match:
        - { header: X-Pool, value: x, upstream: nowhere }
        - { header: x-pool, value: X, upstream: green }
        - { query: q, value: default, upstream: green }
        - { jwt_claim: tenant, value: acme, upstream: green }
        - { cookie: my-release, value: b, upstream: green }
      split: { green: 60, by_body: 50.001 }
      sticky: client_id
  - name: b
    match: { prefix: /b/ }
    upstream: blue
    strip_prefix: true
    traffic: { split: { green: 10 } }
`;
    const got = lines(t).filter((l) => /GW41[1-4]/.test(l));
    const at = (code: string, path: string) => got.some((l) => l.includes(`error ${code} ${path}:`));
    expect(at('GW411', 'routes[0].traffic.match[0].upstream'), got.join('\n')).toBe(true);
    expect(at('GW412', 'routes[0].traffic.split.by_body'), got.join('\n')).toBe(true);
    expect(at('GW412', 'routes[1].traffic'), got.join('\n')).toBe(true);
    expect(at('GW413', 'routes[0].traffic.match'), got.join('\n')).toBe(true);
    expect(at('GW413', 'routes[0].traffic.sticky'), got.join('\n')).toBe(true);
    expect(at('GW414', 'routes[0].traffic.match[1].value'), got.join('\n')).toBe(true);
    expect(at('GW414', 'routes[0].traffic.match[2].value'), got.join('\n')).toBe(true);
    expect(at('GW414', 'routes[0].traffic.split.by_body'), got.join('\n')).toBe(true);
    expect(at('GW414', 'routes[0].traffic.split'), got.join('\n')).toBe(true);
    expect(at('GW414', 'routes[0].traffic.match[4].cookie'), got.join('\n')).toBe(true);
    // positioned in gateway.yaml (file:line:col), never a render error
    expect(got.every((l) => /^gateway\.yaml:\d+:\d+ error GW41[1-4] /.test(l)), got.join('\n')).toBe(true);
    expect(lines(t).some((l) => l.includes('GW400'))).toBe(false);
  });

  it('GW403 check substitutes a missing certificate with a throwaway pair and says so', async () => {
    const { checkConfig } = await import('../../src/commands/check.ts');
    const dir = tempDir();
    const main = path.join(dir, 'gateway.yaml');
    writeFileSync(main, BASE.replace('    port: 8080\n', '    port: 8443\n    tls: { cert: certs/absent.pem, key: certs/absent.key }\n'));
    const r = await checkConfig({ config: main });
    const w = r.diagnostics.find((x) => x.code === 'GW403');
    expect(w, r.diagnostics.map(formatDiagnostic).join('\n')).toBeDefined();
    expect(formatDiagnostic(w!)).toMatch(/gateway\.yaml:5:5 warning GW403 .*certificate .*absent\.pem does not exist here; checked with a throwaway self-signed pair$/);
    expect(r.ok, r.nginxOutput).toBe(true);
  });
});

describe('code coverage guard', () => {
  // Codes produced outside compile() (check, render defences) are covered by their own suites;
  // this guard only asks that each code the sources contain is named by at least one test,
  // golden expectation or example.
  it('every GW code in src/ appears in tests/ or examples/', () => {
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((n) => {
        const p = path.join(dir, n);
        return statSync(p).isDirectory() ? walk(p) : [p];
      });
    const codesIn = (files: string[]) => new Set(files.flatMap((f) => readFileSync(f, 'utf8').match(/\bGW\d{3}\b/g) ?? []));
    const emitted = codesIn(walk(path.join(ROOT, 'src')).filter((f) => f.endsWith('.ts')));
    const tested = codesIn([...walk(path.join(ROOT, 'tests')), ...walk(path.join(ROOT, 'examples'))].filter((f) => !f.endsWith('.png')));
    const missing = [...emitted].filter((c) => !tested.has(c)).sort();
    expect(missing).toEqual([]);
  });
});
