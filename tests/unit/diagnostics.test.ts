// Every validation error: stable code, file:line:col of the offending key, and its path.
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';

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

function diags(text: string, env: Record<string, string> = {}) {
  const r = compile('gateway.yaml', { text, env });
  return r.diagnostics.map(formatDiagnostic);
}

function expectDiag(text: string, expected: string, env: Record<string, string> = {}) {
  const lines = diags(text, env);
  expect(lines, lines.join('\n')).toContain(expected);
}

describe('diagnostics', () => {
  it('accepts the base document', () => {
    const r = compile('gateway.yaml', { text: BASE });
    expect(r.diagnostics).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('GW101 YAML syntax error with position', () => {
    const lines = diags('version: 1\nlisteners: [\n');
    expect(lines[0]).toMatch(/^gateway\.yaml:\d+:\d+ error GW101/);
  });

  it('GW102 duplicate key', () => {
    expectDiag(BASE.replace('    port: 8080', '    port: 8080\n    port: 8081'), 'gateway.yaml:5:5 error GW102 listeners[0].port: duplicate key "port"');
  });

  it('GW103 unset environment variable, with a default syntax hint', () => {
    const t = BASE.replace('[127.0.0.1:9001]', '\n      - ${API_HOST}:9001');
    expectDiag(t, 'gateway.yaml:8:9 error GW103 upstreams.api.servers[0]: environment variable API_HOST is not set (write ${API_HOST:-default} for a default)');
    expect(compile('gateway.yaml', { text: t, env: { API_HOST: '10.0.0.5' } }).model!.upstreams[0].servers[0].address).toBe('10.0.0.5:9001');
    expect(compile('gateway.yaml', { text: BASE.replace('[127.0.0.1:9001]', '\n      - ${H:-127.0.0.2}:9001'), env: {} }).model!.upstreams[0].servers[0].address).toBe('127.0.0.2:9001');
  });

  it('GW201 unknown key points at the key', () => {
    expectDiag(BASE.replace('    upstream: api', '    upstream: api\n    upstreem: api'), 'gateway.yaml:12:5 error GW201 routes[0].upstreem: unknown key "upstreem"');
  });

  it('GW201 missing required key', () => {
    expectDiag(BASE.replace('    port: 8080\n', ''), 'gateway.yaml:3:5 error GW201 listeners[0]: missing required key "port"');
  });

  it('GW204 unknown upstream lists the defined ones', () => {
    expectDiag(BASE.replace('    upstream: api', '    upstream: billing'), 'gateway.yaml:11:15 error GW204 routes[0].upstream: unknown upstream "billing" (defined: api)');
  });

  it('GW205/GW206/GW207/GW208 unknown zones, caches and listeners', () => {
    const t = BASE.replace('    upstream: api', '    upstream: api\n    rate_limits: [fast]\n    conn_limits: [few]\n    cache: { zone: big }\n    listeners: [admin]');
    const lines = diags(t);
    expect(lines).toContain('gateway.yaml:12:19 error GW205 routes[0].rate_limits[0]: unknown rate limit zone "fast" (defined: none)');
    expect(lines).toContain('gateway.yaml:13:19 error GW206 routes[0].conn_limits[0]: unknown connection limit zone "few" (defined: none)');
    expect(lines).toContain('gateway.yaml:14:20 error GW207 routes[0].cache.zone: unknown cache "big" (defined: none)');
    expect(lines).toContain('gateway.yaml:15:17 error GW208 routes[0].listeners[0]: unknown listener "admin" (defined: public)');
  });

  it('GW340 duplicate route match', () => {
    const t = `${BASE}  - name: b\n    match: { prefix: /a/ }\n    upstream: api\n`;
    expectDiag(t, 'gateway.yaml:13:12 error GW340 routes[1].match: duplicate route match: same path as routes[0] ("a") on listener public; merge them (methods and headers narrow a single route)');
  });

  it('GW312 zone names that collide', () => {
    const t = BASE + 'limits:\n  rate:\n    api: { rate: 1r/s }\ncaches:\n  api: {}\n';
    const lines = diags(t);
    expect(lines).toContain('gateway.yaml:14:5 error GW312 limits.rate.api: zone name "api" collides (limits.rate.api, caches.api): nginx shares one namespace for limit and cache zones');
    expect(lines.filter((l) => l.includes('GW312'))).toHaveLength(2);
  });

  it('GW332 regex nginx would reject', () => {
    expectDiag(BASE.replace('{ prefix: /a/ }', "{ regex: '^/a(b' }"), 'gateway.yaml:10:21 error GW332 routes[0].match.regex: regex nginx would reject: missing closing parenthesis');
  });

  it('GW320 weights on ip_hash and GW321 backup with hashing', () => {
    const t = BASE.replace('    servers: [127.0.0.1:9001]', '    balance: ip_hash\n    servers: [{ address: 127.0.0.1:9001, weight: 3 }, { address: 127.0.0.1:9002, backup: true }]');
    const lines = diags(t);
    expect(lines).toContain('gateway.yaml:8:14 error GW320 upstreams.api.servers: weights are not supported with balance: ip_hash (use consistent_hash or round_robin)');
    expect(lines.some((l) => l.includes('GW321'))).toBe(true);
  });

  it('GW322 consistent_hash without a key', () => {
    expectDiag(BASE.replace('    servers: [127.0.0.1:9001]', '    balance: consistent_hash\n    servers: [127.0.0.1:9001]'), 'gateway.yaml:6:3 error GW322 upstreams.api.hash_key: balance: consistent_hash needs hash_key (header, cookie, query or client_ip)');
  });

  it('reports schema and semantic errors together', () => {
    const t = BASE.replace('    upstream: api', '    upstream: nope\n    extra: 1');
    const lines = diags(t);
    expect(lines.some((l) => l.includes('GW201'))).toBe(true);
    expect(lines.some((l) => l.includes('GW204'))).toBe(true);
  });

  it('GW390 flags the raw nginx escape hatch', () => {
    const lines = diags(BASE.replace('    upstream: api', '    upstream: api\n    unsafe_nginx_route: "proxy_buffers 8 16k;"'));
    expect(lines).toContain('gateway.yaml:12:5 warning GW390 routes[0].unsafe_nginx_route: raw nginx snippet (unsafe escape hatch) inserted verbatim into route "a"; review it by hand');
  });
});

describe('config injection never passes', () => {
  const attempts: [string, string][] = [
    ['semicolon in a path', BASE.replace('{ prefix: /a/ }', '{ prefix: "/a; return 200 pwned" }')],
    ['brace in a path', BASE.replace('{ prefix: /a/ }', '{ prefix: "/a{" }')],
    ['newline in a header value', BASE.replace('    upstream: api', '    upstream: api\n    set_headers: { X-A: "a\\nproxy_pass http://evil" }')],
    ['quote in a header match', BASE.replace('{ prefix: /a/ }', '{ prefix: /a/, headers: { X-V: "1\\" ; deny all; \\"" } }')],
    ['directive in a server name', BASE.replace('    port: 8080', '    port: 8080\n    server_names: ["a.com; include /etc/passwd"]')],
    ['directive in an upstream address', BASE.replace('127.0.0.1:9001', '"127.0.0.1:9001 backup; server evil:80"')],
    ['newline in a regex', BASE.replace('{ prefix: /a/ }', '{ regex: "^/a\\n}" }')],
    ['variable in a CIDR', BASE.replace('    upstream: api', '    upstream: api\n    access: { allow: ["$remote_addr"] }')],
  ];
  for (const [what, text] of attempts) {
    it(`rejects ${what}`, () => {
      const r = compile('gateway.yaml', { text });
      expect(r.ok).toBe(false);
      expect(r.files).toBeNull();
      expect(r.diagnostics.some((x) => x.severity === 'error' && x.at && x.at.line > 0)).toBe(true);
    });
  }

  it('neutralises $ in free text so user text cannot read nginx variables', () => {
    const r = compile('gateway.yaml', { text: BASE.replace('    upstream: api', '    upstream: api\n    set_headers: { X-Price: "costs $5 or $remote_addr" }') });
    expect(r.ok).toBe(true);
    expect(r.files!['conf.d/40-servers.conf']).toContain('proxy_set_header "X-Price" "costs ${gw_dollar}5 or ${gw_dollar}remote_addr";');
  });
});
