// sticky cookies (src/features/routing/sticky.ts): the refusals (GW287-GW291), the maps and
// Set-Cookie line of issue: gateway, nginx's own sticky line for issue: nginx and the version
// it needs, and issue: upstream unchanged. Through nginx: tests/routing/sticky-nginx.test.ts.
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';

const config = (sticky: string, extra = '') => `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  app:
    sticky: ${sticky}
    servers: [127.0.0.1:9001, 127.0.0.1:9002]
${extra}routes:
  - name: a
    match: { prefix: /a/ }
    upstream: app
`;
const build = (text: string) => compile('gateway.yaml', { text, env: {} });
const diagnostics = (text: string) => build(text).diagnostics.map(formatDiagnostic);

describe('sticky rules', () => {
  it('GW287 hash_fallback: client_ip with issue: gateway', () => {
    const out = diagnostics(config('{ cookie: gw_srv, issue: gateway }\n    hash_fallback: client_ip'));
    expect(out.some((l) => /error GW287 upstreams\.app\.hash_fallback: hash_fallback: client_ip cannot be used with sticky issue: gateway/.test(l)), out.join('\n')).toBe(true);
  });

  it('GW288 a cookie name nginx cannot read back through $cookie_', () => {
    const out = diagnostics(config('{ cookie: gw-srv, issue: gateway }'));
    expect(out).toContain(
      'gateway.yaml:7:23 error GW288 upstreams.app.sticky.cookie: cookie name "gw-srv" holds "-" or ".": nginx reads cookies through $cookie_<name>, which cannot name it, so the cookie the gateway sets would never be read back; use letters, digits and _',
    );
  });

  it('GW289 samesite: none without secure', () => {
    const out = diagnostics(config('{ cookie: gw_srv, issue: gateway, samesite: none }'));
    expect(out.some((l) => /error GW289 upstreams\.app\.sticky\.samesite: samesite: none needs secure: true/.test(l)), out.join('\n')).toBe(true);
  });

  it('GW290 cookie attributes with issue: upstream (the backend sets the cookie)', () => {
    const out = diagnostics(config('{ cookie: session_id, max_age: 1h, secure: true }'));
    expect(out.some((l) => /error GW290 upstreams\.app\.sticky\.max_age: max_age, secure: cookie attributes apply when the gateway sets the cookie/.test(l)), out.join('\n')).toBe(true);
  });

  it('GW291 warns when model-aware routes reach a gateway-issued upstream (no cookie set there)', () => {
    const text = config('{ cookie: gw_srv, issue: gateway }', 'models:\n  - { id: m1, upstream: app }\n') + '  - name: chat\n    match: { exact: /v1/chat/completions, methods: [POST] }\n    models: route\n';
    const out = diagnostics(text);
    expect(out.some((l) => /warning GW291 upstreams\.app\.sticky: model-aware routes reach upstream app \(models m1\)/.test(l)), out.join('\n')).toBe(true);
  });
});

describe('sticky output', () => {
  it('issue: gateway hashes on the cookie, the request id without it, and sets that id as the cookie', () => {
    const r = build(config('{ cookie: gw_srv, issue: gateway, path: /a/, max_age: 1d, httponly: false, samesite: false }'));
    expect(r.diagnostics.filter((x) => x.severity === 'error').map(formatDiagnostic)).toEqual([]);
    const maps = r.files!['conf.d/00-maps.conf'];
    expect(maps).toContain('map $cookie_gw_srv $gw_hash_key_app {\n    "" $request_id;\n    default $cookie_gw_srv;\n}');
    expect(maps).toContain('map $cookie_gw_srv $gw_sticky_set_app {\n    default "";\n    "" "gw_srv=$request_id; Path=/a/; Max-Age=86400";\n}');
    expect(r.files!['conf.d/30-upstreams.conf']).toContain('hash $gw_hash_key_app consistent;');
    // on 2xx/3xx answers only (no `always`); an empty value is not sent
    expect(r.files!['conf.d/40-servers.conf']).toContain('add_header Set-Cookie $gw_sticky_set_app;');
    expect(JSON.parse(r.files!['manifest.json']).routes[0].njsCalls).toBe(0);
  });

  it('issue: nginx writes nginx\'s sticky line and needs nginx 1.29.6', () => {
    const r = build(config('{ cookie: srv, issue: nginx, max_age: 2h, secure: true, samesite: none }'));
    expect(r.files!['conf.d/30-upstreams.conf']).toContain('sticky cookie srv expires=7200s httponly secure samesite=none "path=/";');
    expect(r.files!['conf.d/30-upstreams.conf']).not.toContain('hash ');
    expect(JSON.parse(r.files!['manifest.json']).requires.nginx).toBe('1.29.6');
    expect(r.files!['conf.d/40-servers.conf']).not.toContain('Set-Cookie');
  });

  it('issue: upstream (default) is the hash on the backend cookie, the client IP without it', () => {
    const r = build(config('{ cookie: session_id }'));
    expect(r.files!['conf.d/00-maps.conf']).toContain('map $cookie_session_id $gw_hash_key_app {\n    "" $remote_addr;');
    expect(r.files!['conf.d/40-servers.conf']).not.toContain('Set-Cookie');
    expect(JSON.parse(r.files!['manifest.json']).requires.nginx).toBe('1.24.0');
  });
});
