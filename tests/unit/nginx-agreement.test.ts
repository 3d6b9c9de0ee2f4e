// validate agrees with nginx -t on the cases found by review: each refusal is positioned
// with a GW code, and each acceptance is checked with real nginx (the `check` path).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { checkConfig } from '../../src/commands/check.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { findOpenssl } from '../../src/tls/openssl.ts';
import { LONGEST_DERIVED_VARIABLE_AFFIXES } from '../../src/targets/nginx/render.ts';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'gatewayctl-agree-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const BASE = `version: 1
listeners:
  - name: web
    port: 8080
upstreams:
  api:
    servers: [127.0.0.1:9001]
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: api
`;

const errors = (text: string) =>
  compile('gateway.yaml', { text })
    .diagnostics.filter((x) => x.severity === 'error')
    .map(formatDiagnostic);

let n = 0;
async function nginxAccepts(text: string, dir = path.join(scratch, `c${n++}`)) {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'gateway.yaml');
  writeFileSync(file, text);
  const r = compile(file);
  expect(r.diagnostics.filter((x) => x.severity === 'error').map(formatDiagnostic)).toEqual([]);
  const c = await checkConfig({ config: file });
  expect(c.ok, `${c.nginxOutput}\n${c.diagnostics.map(formatDiagnostic).join('\n')}`).toBe(true);
  return r;
}

describe('refused by validate, positioned, as nginx would refuse them', () => {
  it.each([
    ['a header value over 4 KiB once "$" is escaped', BASE.replace('    upstream: api\n', () => `    upstream: api\n    set_headers: { X-Price: "${'$'.repeat(400)}" }\n`), /gateway\.yaml:12:29 error GW241 routes\[0\]\.set_headers\.X-Price: set_headers\.X-Price is 4802 bytes once quoted/],
    ['a 4096-character body (within the schema maxLength)', BASE.replace('    upstream: api\n', `    respond: { status: 200, body: "${'b'.repeat(4096)}" }\n`), /error GW241 routes\[0\]\.respond\.body/],
    ['keepalive: 99999999999', BASE.replace('    servers:', '    keepalive: 99999999999\n    servers:'), /gateway\.yaml:7:16 error GW201 upstreams\.api\.keepalive: must be <= 10000/],
    ['upstream port 0', BASE.replace('127.0.0.1:9001', '127.0.0.1:0'), /gateway\.yaml:7:15 error GW201 upstreams\.api\.servers\[0\]/],
    ['upstream port 99999', BASE.replace('127.0.0.1:9001', '127.0.0.1:99999'), /error GW201 upstreams\.api\.servers\[0\]/],
    ['status.listen port 0', `${BASE}global:\n  status: { listen: "127.0.0.1:0" }\n`, /gateway\.yaml:13:21 error GW201 global\.status\.listen/],
    ['CIDR fffff', `${BASE}global:\n  trusted_proxies: [fffff]\n`, /gateway\.yaml:13:21 error GW240 global\.trusted_proxies\[0\]: "fffff" is not an IP address or CIDR/],
    ['trusted_proxies: [all]', `${BASE}global:\n  trusted_proxies: [all]\n`, /gateway\.yaml:13:21 error GW240 global\.trusted_proxies\[0\]: trusted_proxies takes addresses or CIDRs, not "all"/],
    ['CIDR /99', BASE.replace('    upstream: api\n', '    upstream: api\n    access: { allow: [10.0.0.0/99] }\n'), /gateway\.yaml:12:23 error GW240 routes\[0\]\.access\.allow\[0\]: "10\.0\.0\.0\/99" is not an IP address or CIDR/],
    ['rate: 0r/s', `${BASE}limits:\n  rate:\n    z: { rate: 0r/s }\n`, /gateway\.yaml:14:16 error GW201 limits\.rate\.z\.rate/],
    ['a host name over 253 characters', BASE.replace('{ prefix: /a/ }', `{ prefix: /a/, host: ${Array(5).fill('h'.repeat(60)).join('.')}.example }`), /error GW201 routes\[0\]\.match\.host: must NOT have more than 253 characters/],
    ['a regex with an unbounded lookbehind', BASE.replace('{ prefix: /a/ }', "{ regex: '(?<=/a+)b' }"), /error GW332 routes\[0\]\.match\.regex: regex nginx would reject: length of lookbehind assertion is not limited/],
    ['a regex with \\u', BASE.replace('{ prefix: /a/ }', "{ regex: '^/\\u0041' }"), /error GW332 routes\[0\]\.match\.regex: regex nginx would reject: PCRE2 does not support/],
    ['limit_conn over 65535', `${BASE}limits:\n  conn:\n    c: { max: 70000 }\n`, /error GW201 limits\.conn\.c\.max: must be <= 65535/],
    ['the same CORS origin in two spellings', BASE.replace('    upstream: api\n', '    upstream: api\n    cors: { origins: [https://a.example, https://A.example] }\n'), /gateway\.yaml:12:5 error GW242 routes\[0\]\.cors\.origins\[1\]|error GW242 routes\[0\]\.cors\.origins\[1\]/],
    ['a 1k limit zone', `${BASE}limits:\n  rate:\n    z: { rate: 1r/s, size: 1k }\n`, /error GW243 limits\.rate\.z\.size: zone size 1k is out of range/],
    ['a zone size in g (nginx takes k or m)', `${BASE}caches:\n  c: { size: 1g }\n`, /error GW243 caches\.c\.size: zone size 1g: nginx takes zone sizes in k or m/],
    ['max_body in g where the body is buffered in memory', BASE.replace('    upstream: api\n', '    upstream: api\n    max_body: 2g\n    cache: { zone: c, key_includes_body: true }\n') + 'caches:\n  c: {}\n', /error GW244 routes\[0\]\.max_body: max_body 2g is also this route's in-memory body buffer/],
    ['a log file name over 255 bytes', `${BASE}global:\n  access_log: { path: logs/${'a'.repeat(300)}.log }\n`, /gateway\.yaml:13:\d+ error GW246 global\.access_log\.path: a file or directory name in this path is longer than 255 bytes/],
    ['an auth failure log path over 1024 bytes (each name within 255)', `${BASE}auth:\n  api_keys: { file: keys.yaml }\n  failure_log: logs/${'a/'.repeat(520)}f.log\n`, /gateway\.yaml:\d+:\d+ error GW246 auth\.failure_log: the path is 1050 bytes long \(at most 1024/],
    ['a log path that names a directory', `${BASE}global:\n  access_log: { path: "logs/" }\n`, /error GW246 global\.access_log\.path: "logs\/" names a directory/],
    ['seconds-only durations with ms', BASE.replace('    servers:', '    fail_timeout: 500ms\n    servers:'), /error GW201 upstreams\.api\.fail_timeout/],
    ['units out of order', BASE.replace('    upstream: api\n', '    upstream: api\n    timeouts: { read: 1s1m }\n'), /error GW201 routes\[0\]\.timeouts\.read/],
    ['the same rate zone twice on a route', `${BASE.replace('    upstream: api\n', '    upstream: api\n    rate_limits: [z, z]\n')}limits:\n  rate:\n    z: { rate: 1r/s }\n`, /error GW201 routes\[0\]\.rate_limits: must NOT have duplicate items/],
    ['tls without cert and key', BASE.replace('    port: 8080\n', '    port: 8443\n    tls: {}\n'), /error GW350 listeners\[0\]\.tls: tls needs cert and key/],
    ['a listener address that is not an IP', BASE.replace('    port: 8080\n', '    port: 8080\n    address: 10.0.0.256\n'), /error GW201 listeners\[0\]\.address/],
    ['an upstream "IPv4" that is not one', BASE.replace('127.0.0.1:9001', '10.0.0.256:80'), /error GW240 upstreams\.api\.servers\[0\]: "10\.0\.0\.256" is not an IPv4 address/],
  ])('%s', (_what, text, expected) => {
    const out = errors(text);
    expect(out, out.join('\n')).toContainEqual(expect.stringMatching(expected));
    expect(out.every((l) => /^gateway\.yaml:\d+:\d+ error GW\d{3} /.test(l)), out.join('\n')).toBe(true);
  });
});

describe('accepted by validate and by nginx -t', () => {
  it('regexes with (?s), (?m), (?x)', async () => {
    await nginxAccepts(`${BASE}  - name: s\n    match: { regex: '(?s)^/s.x' }\n    upstream: api\n  - name: m\n    match: { regex: '(?m)^/m$' }\n    upstream: api\n  - name: x\n    match: { regex: '(?x) ^/x  [0-9]+ # id' }\n    upstream: api\n`);
  });

  it('host names and CORS origins longer than the default hash buckets (sized from the data)', async () => {
    const host = `${'h'.repeat(60)}.${'i'.repeat(60)}.${'j'.repeat(60)}.example`;
    const names = Array.from({ length: 300 }, (_, i) => `n${i}-${'x'.repeat(50)}.${'y'.repeat(40)}.example.com`);
    const r = await nginxAccepts(
      BASE.replace('    port: 8080\n', `    port: 8080\n    server_names: [${names.join(', ')}]\n`).replace('{ prefix: /a/ }', `{ prefix: /a/, host: ${host} }`) +
        `  - name: c\n    match: { prefix: /c/ }\n    upstream: api\n    cors: { origins: [https://${host}:8443, https://b.example] }\n`,
    );
    const conf = r.files!['nginx.conf'];
    expect(conf).toMatch(/server_names_hash_bucket_size (256|512);/);
    expect(conf).toMatch(/map_hash_bucket_size (256|512);/);
  });

  it('a long route host on a TLS listener with redirect_from (the redirect-target map is sized for it)', async () => {
    const host = `${'l'.repeat(50)}.${'m'.repeat(50)}.${'n'.repeat(26)}`;
    const r = await nginxAccepts(
      BASE.replace('    port: 8080\n', '    port: 8443\n    server_names: [gw.example.com]\n    tls: { cert: /etc/ssl/gw.pem, key: /etc/ssl/gw.key, redirect_from: 8080 }\n').replace(
        '{ prefix: /a/ }',
        `{ prefix: /a/, host: ${host} }`,
      ),
    );
    expect(r.files!['conf.d/40-servers.conf']).toContain(`"${host}" "${host}";`);
    expect(r.files!['nginx.conf']).toMatch(/map_hash_bucket_size (256|512);/);
  });

  it('rate limit delay: 0 (nginx default: every excess request waits; its delay= takes 1 or more)', async () => {
    const text = `${BASE.replace('    upstream: api\n', '    upstream: api\n    rate_limits: [z]\n')}limits:\n  rate:\n    z: { rate: 5r/s, burst: 10, delay: 0 }\n`;
    const r = await nginxAccepts(text);
    expect(r.files!['conf.d/40-servers.conf']).toContain('limit_req zone=gw_rl_z burst=10;');
    // divided over a fleet, delay 1 rounds down to 0
    const fleet = await nginxAccepts(`${text.replace('delay: 0', 'delay: 3')}fleet: { replicas: 4, limits: divided }\n`);
    expect(fleet.files!['conf.d/40-servers.conf']).toContain('limit_req zone=gw_rl_z burst=2;');
  });

  it('header names up to the schema\'s 64 characters, and 100 hidden headers on one route (proxy_headers_hash sized for them)', async () => {
    // (50 set and 50 removed: the schema's most)
    const long = `X-${'a'.repeat(62)}`;
    const names = Array.from({ length: 50 }, (_, i) => `X-Custom-Header-Number-${String(i).padStart(3, '0')}`);
    const text = BASE.replace(
      '    upstream: api\n',
      `    upstream: api\n    set_headers: { ${long}: v }\n    response_headers:\n      set: { ${names.map((n) => `${n}-S: v`).join(', ')} }\n      remove: [${long}, ${names.slice(1).join(', ')}]\n`,
    );
    const dir = path.join(scratch, `c${n++}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'gateway.yaml'), text);
    const c = await checkConfig({ config: path.join(dir, 'gateway.yaml') });
    expect(c.ok, c.nginxOutput).toBe(true);
    // not even nginx's "could not build optimal proxy_headers_hash" warning
    expect(c.nginxOutput).not.toMatch(/proxy_headers_hash/);
    expect(compile(path.join(dir, 'gateway.yaml')).files!['nginx.conf']).toContain('proxy_headers_hash_bucket_size 128;');
    // a config of ordinary names keeps nginx's defaults
    expect((await nginxAccepts(BASE)).files!['nginx.conf']).not.toContain('proxy_headers_hash');
  });

  it('names of 63 characters everywhere a feature derives a variable from one (variables_hash sized for them)', async () => {
    // each name the schema's longest, distinct in its first characters
    const nm = (p: string) => `${p}${'x'.repeat(63 - p.length)}`;
    const [rCors, rTraffic, rStrip, rRoles, rSticky, up, upHash, upSticky, green, web, tlsL, zHeader, zTier] = [
      nm('rcors'), nm('rtraffic'), nm('rstrip'), nm('rroles'), nm('rsticky'), nm('up'), nm('uphash'), nm('upsticky'), nm('green'), nm('web'), nm('tls'), nm('zheader'), nm('ztier'),
    ];
    const text = `version: 1
listeners:
  - { name: ${web}, port: 8080 }
  - { name: ${tlsL}, port: 8443, server_names: [gw.example.com], tls: { cert: /etc/ssl/gw.pem, key: /etc/ssl/gw.key, redirect_from: 8081 } }
upstreams:
  ${up}: { servers: [127.0.0.1:9001] }
  ${green}: { servers: [127.0.0.1:9002] }
  ${upHash}: { servers: [127.0.0.1:9001, 127.0.0.1:9002], balance: consistent_hash, hash_key: { header: X-User } }
  ${upSticky}: { servers: [127.0.0.1:9001, 127.0.0.1:9002], sticky: { cookie: srv, issue: gateway } }
auth:
  api_keys: { file: keys.yaml }
limits:
  rate:
    ${zHeader}: { key: { header: X-Tenant }, rate: 10r/s }
    ${zTier}: { key: client_id, rate: 10r/s, tier: gold }
routes:
  - { name: ${rCors}, match: { prefix: /c/ }, upstream: ${up}, cors: { origins: [https://a.example] }, listeners: [${web}] }
  - { name: ${rTraffic}, match: { prefix: /t/ }, upstream: ${up}, traffic: { match: [{ header: X-A, value: "1", upstream: ${green} }, { cookie: rel, value: b, upstream: ${green} }], split: { ${green}: 10 }, sticky: { header: X-User } }, listeners: [${web}] }
  - { name: ${rStrip}, match: { prefix: /s }, upstream: ${upHash}, strip_prefix: true, rate_limits: [${zHeader}], listeners: [${web}] }
  - { name: ${rRoles}, match: { prefix: /r/ }, upstream: ${up}, auth: { methods: [api_key], roles: [admin] }, rate_limits: [${zTier}], rewrite: /v2/, listeners: [${web}] }
  - { name: ${rSticky}, match: { prefix: /k/ }, upstream: ${upSticky}, listeners: [${tlsL}] }
`;
    const dir = path.join(scratch, `c${n++}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'keys.yaml'), 'version: 1\nkeys: []\n');
    const r = await nginxAccepts(text, dir);
    expect(r.files!['nginx.conf']).toContain('variables_hash_bucket_size 128;');
    // every derived variable is there, the longest with the most the affixes allow
    const conf = Object.values(r.files!).join('\n');
    const derived = [...new Set(conf.match(/\$gw_[a-z0-9_]*x{20,}[a-z0-9_]*/g) ?? [])];
    expect(derived.length).toBeGreaterThan(10);
    expect(Math.max(...derived.map((v) => v.length - 1))).toBeLessThanOrEqual(63 + LONGEST_DERIVED_VARIABLE_AFFIXES);
  });

  it('an API-key header whose name starts with a digit, on a route that takes a key or a JWT', async () => {
    const dir = path.join(scratch, `c${n++}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'keys.yaml'), 'version: 1\nkeys: []\n');
    writeFileSync(path.join(dir, 'hs.secret'), 'agreement-hs256-secret-0123456789abcdef');
    const text = `${BASE.replace('    upstream: api\n', '    upstream: api\n    auth: { methods: [api_key, jwt], jwt_provider: hs }\n')}auth:\n  api_keys: { file: keys.yaml, header: 1ms }\n  jwt:\n    hs: { algorithms: [HS256], secret_file: hs.secret }\n`;
    const r = await nginxAccepts(text, dir);
    expect(r.files!['conf.d/05-auth.conf']).toContain('map $http_1ms $gw_key_sent_1ms {');
  });

  it('an API-key header of the schema\'s 64 characters on a route that takes a key or a JWT (the key-sent variable is named after it)', async () => {
    const dir = path.join(scratch, `c${n++}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'keys.yaml'), 'version: 1\nkeys: []\n');
    writeFileSync(path.join(dir, 'hs.secret'), 'agreement-hs256-secret-0123456789abcdef');
    const header = 'a'.repeat(64);
    const text = `${BASE.replace('    upstream: api\n', '    upstream: api\n    auth: { methods: [api_key, jwt], jwt_provider: hs }\n')}auth:\n  api_keys: { file: keys.yaml, header: ${header} }\n  jwt:\n    hs: { algorithms: [HS256], secret_file: hs.secret }\n`;
    const r = await nginxAccepts(text, dir);
    expect(r.files!['conf.d/05-auth.conf']).toContain(`$gw_key_sent_${header} {`);
    expect(r.files!['nginx.conf']).toContain('variables_hash_bucket_size 128;');
  });

  it('CORS on 12 and on 150 routes: nginx builds the variables hash without a warning (sized for the variables the routes define)', async () => {
    for (const count of [12, 150]) {
      const routes = Array.from({ length: count }, (_, i) => `  - { name: r${i}, match: { prefix: /r${i}/ }, upstream: api, cors: { origins: [https://a${i}.example] } }\n`).join('');
      const dir = path.join(scratch, `c${n++}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'gateway.yaml'), BASE.replace(/routes:\n[\s\S]*$/, `routes:\n${routes}`));
      const c = await checkConfig({ config: path.join(dir, 'gateway.yaml') });
      expect(c.ok, c.nginxOutput).toBe(true);
      // nginx's default sizes warned "could not build optimal variables_hash" from 12 CORS routes on
      expect(c.nginxOutput, `${count} routes`).not.toMatch(/variables_hash/);
      expect(compile(path.join(dir, 'gateway.yaml')).files!['nginx.conf']).toMatch(/variables_hash_max_size \d+;/);
    }
  });

  it('address "[::1]" is built as an IPv6 listen', async () => {
    const r = await nginxAccepts(BASE.replace('    port: 8080\n', '    port: 8080\n    address: "[::1]"\n'));
    expect(r.files!['conf.d/40-servers.conf']).toContain('listen [::1]:8080 default_server;');
  });

  it('relative TLS paths under a directory whose name has a space', async () => {
    const dir = path.join(scratch, 'my gateway');
    mkdirSync(path.join(dir, 'ssl'), { recursive: true });
    execFileSync(findOpenssl(), ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=t', '-keyout', path.join(dir, 'ssl/key.pem'), '-out', path.join(dir, 'ssl/cert.pem')], { stdio: 'ignore' });
    const r = await nginxAccepts(BASE.replace('    port: 8080\n', '    port: 8443\n    tls: { cert: ssl/cert.pem, key: ssl/key.pem }\n'), dir);
    expect(r.files!['conf.d/40-servers.conf']).toContain(`ssl_certificate "${dir}/ssl/cert.pem";`);
  });

  it('a host route and a host-less route with the same path', async () => {
    await nginxAccepts(`${BASE}  - name: b\n    match: { prefix: /a/, host: b.example }\n    upstream: api\n`);
  });

  it('the features together: budgets and fallbacks, shared breakers and health checks, either credential on a model route, traffic, metrics, cache, CORS, admin API', async () => {
    // features meet in the same locations (the body step, chain stages, steered twins, error
    // pages): a combination no single golden case holds must still pass nginx -t
    const dir = path.join(scratch, 'together');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'hs.secret'), 's'.repeat(40));
    const root = path.resolve(import.meta.dirname, '..', '..');
    const r = await nginxAccepts(
      `version: 1
global:
  status: { listen: "127.0.0.1:9145" }
listeners:
  - { name: public, port: 8080 }
upstreams:
  gpu_a:
    servers: ["10.0.3.1:8000", "10.0.3.2:8000"]
    health_check: { path: /health, interval: 2s, timeout: 1s }
    circuit_breaker: { failures: 5, window: 30s, open_for: 60s }
  gpu_b:
    servers: ["10.0.3.3:8000", { address: "10.0.3.1:8000", max_conns: 4 }]
    circuit_breaker: { failures: 5, window: 30s, open_for: 60s }
  small: { servers: ["10.0.4.1:8000"], balance: consistent_hash, hash_key: { body_field: user } }
  blue: { servers: ["10.0.1.1:8000"] }
  green: { servers: ["10.0.2.1:8000"] }
models:
  - id: big
    pools: [gpu_a, gpu_b]
    fallback: { to: [{ model: small-model }, { upstream: blue }], on: [error, timeout, 429, 503], deadline: 20s }
  - id: mixed
    pools: [{ upstream: gpu_a, weight: 3 }, { upstream: gpu_b, weight: 1 }]
  - { id: small-model, upstream: small }
auth:
  api_keys: { file: ${root}/tests/golden/auth-api-key/keys.yaml }
  jwt:
    hs: { algorithms: [HS256], secret_file: hs.secret, tier_claim: tier }
limits:
  tokens:
    per_client: { key: client_id, window: hour, tokens: 100000 }
    per_model: { key: model, window: day, tokens: 5000000, on_exceed: clamp }
  rate:
    daily: { key: client_id, rate: 1000r/d }
    burst: { key: client_ip, rate: 10r/s, burst: 20 }
caches:
  pages: {}
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    streaming: true
    auth: { methods: [api_key, jwt], jwt_provider: hs }
    token_limits: [per_client, per_model]
    rate_limits: [daily, burst]
  - name: models
    match: { exact: /v1/models }
    models: list
  - name: web
    match: { prefix: /web/ }
    upstream: blue
    cache: { zone: pages }
    cors: { origins: [https://app.example] }
    response_headers: { set: { X-Served-By: gateway } }
    traffic:
      match: [{ header: X-Canary, value: "1", upstream: green }]
      split: { green: 10 }
      sticky: client_ip
metrics:
  llm: { client_label: true }
admin_api: { token: together-admin-token-0123456789abcdef }
cluster_status: { listener: public }
`,
      dir,
    );
    expect(r.files!['conf.d/40-servers.conf']).toContain('proxy_set_body $gw_fallback_body;');
  });

  it('an API key store of 3,000 keys (the key map is sized for them)', async () => {
    const dir = path.join(scratch, 'many-keys');
    mkdirSync(dir, { recursive: true });
    const keys = Array.from({ length: 3000 }, (_, i) => {
      const hash = createHash('sha256').update(`key-${i}`).digest('hex');
      return `  - id: key_${i.toString(16).padStart(12, '0')}\n    name: client-${i}\n    hash: ${hash}\n    created: 2026-01-01T00:00:00.000Z\n`;
    });
    writeFileSync(path.join(dir, 'keys.yaml'), `version: 1\nkeys:\n${keys.join('')}`);
    const r = await nginxAccepts(`${BASE.replace('    upstream: api\n', '    upstream: api\n    auth: api_key\n')}auth:\n  api_keys: { file: keys.yaml }\n`, dir);
    expect(r.files!['nginx.conf']).toMatch(/map_hash_max_size \d+;|map_hash_bucket_size (256|512|1024);/);
  });
});
