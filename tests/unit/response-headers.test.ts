// response_headers (src/features/response-headers): the refusals (GW230 framing names, GW281
// names the gateway sends itself, GW282 a name twice, GW283 Server/Date) and the merged set
// every location of a route repeats. The behaviour through nginx is the data spec
// tests/integration/specs/response-headers.
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';

const config = (listenerHeaders: string, routeExtra: string) => `version: 1
listeners:
  - name: public
    port: 8080
${listenerHeaders}
upstreams:
  api:
    servers: [127.0.0.1:9001]
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: api
${routeExtra}
`;

const diagnostics = (text: string) => compile('gateway.yaml', { text, env: {} }).diagnostics.map(formatDiagnostic);

describe('response_headers rules', () => {
  it('GW230 a framing or hop-by-hop name is refused, set or removed, at its key', () => {
    const out = diagnostics(config('    response_headers:\n      set: { Transfer-Encoding: chunked }\n      remove: [Connection]', ''));
    expect(out).toContain(
      "gateway.yaml:6:33 error GW230 listeners[0].response_headers.set.Transfer-Encoding: Transfer-Encoding cannot be set in response_headers: framing and hop-by-hop headers (Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE, Trailer, Proxy-*, Host) are nginx's own for each hop",
    );
    expect(out.some((l) => /GW230 listeners\[0\]\.response_headers\.remove\[0\]: Connection cannot be removed/.test(l))).toBe(true);
  });

  it('GW281 names the gateway sends itself: request id, identity names, X-Gw-*, presets, CORS', () => {
    const out = diagnostics(
      config(
        '    response_headers:\n      set: { X-Request-Id: spoofed, X-Frame-Options: SAMEORIGIN, X-Gateway-Client: admin }',
        '    cors: { origins: ["*"] }\n    response_headers:\n      set: { Access-Control-Allow-Origin: "*" }\n      remove: [X-Gw-Status]',
      ),
    );
    expect(out).toContain(
      'gateway.yaml:6:28 error GW281 listeners[0].response_headers.set.X-Request-Id: X-Request-Id cannot be set in response_headers: the gateway sends it itself (the request id (global.request_id.header)); change it there',
    );
    expect(out.some((l) => /GW281 listeners\[0\]\.response_headers\.set\.X-Frame-Options: .*security_headers\.frame_options/.test(l))).toBe(true);
    expect(out.some((l) => /GW281 listeners\[0\]\.response_headers\.set\.X-Gateway-Client: .*identity header/.test(l))).toBe(true);
    expect(out.some((l) => /GW281 routes\[0\]\.response_headers\.set\.Access-Control-Allow-Origin: .*cors of route a/.test(l))).toBe(true);
    expect(out.some((l) => /GW281 routes\[0\]\.response_headers\.remove\[0\]: X-Gw-Status cannot be removed/.test(l))).toBe(true);
  });

  it('GW281 a route served on several listeners is checked against the presets of each', () => {
    const text = config('    security_headers: { preset: "off" }\n  - name: other\n    port: 8081', '    response_headers:\n      set: { X-Frame-Options: SAMEORIGIN }');
    const out = diagnostics(text);
    expect(out.filter((l) => /GW281 routes\[0\]\.response_headers\.set\.X-Frame-Options: .*security_headers\.frame_options/.test(l)), out.join('\n')).toHaveLength(1);
  });

  it('GW281 a preset name is free once the preset is off', () => {
    const out = diagnostics(config('    security_headers: { preset: "off" }\n    response_headers:\n      set: { X-Frame-Options: SAMEORIGIN }', ''));
    expect(out.filter((l) => / error /.test(l))).toEqual([]);
  });

  it('GW282 the same name twice, in any case, set and removed', () => {
    const out = diagnostics(config('', '    response_headers:\n      set: { X-A: "1", x-a: "2" }\n      remove: [X-B, x-B]'));
    expect(out.some((l) => /GW282 routes\[0\]\.response_headers\.set\.x-a: x-a appears twice/.test(l))).toBe(true);
    expect(out.some((l) => /GW282 routes\[0\]\.response_headers\.remove\[1\]: x-B appears twice/.test(l))).toBe(true);
  });

  it('GW292 Set-Cookie cannot be set: replacing it would drop the application\'s cookies', () => {
    const out = diagnostics(config('', '    response_headers:\n      set: { Set-Cookie: "a=b" }'));
    expect(out.some((l) => /error GW292 routes\[0\]\.response_headers\.set\.Set-Cookie: Set-Cookie cannot be set in response_headers/.test(l)), out.join('\n')).toBe(true);
  });

  it('GW241 a value nginx could not read once its $ are quoted', () => {
    const out = diagnostics(config('', `    response_headers:\n      set: { X-Price: "${'$'.repeat(400)}" }`));
    expect(out.some((l) => /error GW241 routes\[0\]\.response_headers\.set\.X-Price: the value of X-Price is 4802 bytes once quoted/.test(l)), out.join('\n')).toBe(true);
    expect(diagnostics(config('', `    response_headers:\n      set: { X-Price: "${'$'.repeat(300)}" }`)).filter((l) => / error /.test(l))).toEqual([]);
  });

  it('GW283 Server and Date cannot be removed', () => {
    const out = diagnostics(config('', '    response_headers:\n      remove: [Server, Date]'));
    expect(out.filter((l) => /GW283/.test(l))).toHaveLength(2);
    expect(out[0]).toMatch(/^gateway\.yaml:\d+:\d+ error GW283 routes\[0\]\.response_headers\.remove\[0\]: Server cannot be removed/);
  });
});

describe('response_headers output', () => {
  const servers = (text: string) => {
    const r = compile('gateway.yaml', { text, env: {} });
    expect(r.diagnostics.filter((x) => x.severity === 'error').map(formatDiagnostic)).toEqual([]);
    return r.files!['conf.d/40-servers.conf'];
  };

  it('every location with add_header repeats presets, listener and route headers; set hides the upstream copy', () => {
    const conf = servers(
      config(
        '    response_headers:\n      set: { Permissions-Policy: "camera=()" }',
        '    match: { prefix: /a/, methods: [GET] }\n    response_headers:\n      set: { Cache-Control: { value: "no-store", always: false } }\n      remove: [X-Powered-By]',
      ).replace('    match: { prefix: /a/ }\n', ''),
    );
    const route = conf.slice(conf.indexOf('location "/a/"'));
    const block = route.slice(0, route.indexOf('\n    }'));
    expect(block).toContain('add_header X-Content-Type-Options "nosniff" always;');
    expect(block).toContain('proxy_hide_header "Permissions-Policy";\n        add_header "Permissions-Policy" "camera=()" always;');
    expect(block).toContain('proxy_hide_header "Cache-Control";\n        add_header "Cache-Control" "no-store";');
    expect(block).toContain('proxy_hide_header "X-Powered-By";');
    // the route's 405 answer repeats the whole set
    const err405 = conf.slice(conf.indexOf('location @gw_route_a_405'));
    expect(err405.slice(0, err405.indexOf('}'))).toContain('add_header "Permissions-Policy" "camera=()" always;');
    expect(err405.slice(0, err405.indexOf('}'))).toContain('add_header X-Content-Type-Options "nosniff" always;');
  });

  it('a route setting or removing a listener header replaces the listener line, and $ stays literal', () => {
    const conf = servers(
      config('    response_headers:\n      set: { Permissions-Policy: "camera=()", X-Keep: "k" }', '    response_headers:\n      set: { Permissions-Policy: "$geo" }'),
    );
    const route = conf.slice(conf.indexOf('location "/a/"'));
    const block = route.slice(0, route.indexOf('\n    }'));
    expect(block).not.toContain('"camera=()"');
    expect(block).toContain('add_header "Permissions-Policy" "${gw_dollar}geo" always;');
    expect(block).toContain('add_header "X-Keep" "k" always;');
  });
});
