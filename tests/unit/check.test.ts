// `gatewayctl check`: nginx's own error, the generated file and line, and the gateway.yaml
// entry behind it; hosts that do not resolve here are substituted and reported.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../src/commands/check.ts';
import { render } from '../../src/targets/nginx/render.ts';
import { FEATURES } from '../../src/features/index.ts';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';

function config(text: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-check-'));
  writeFileSync(path.join(dir, 'gateway.yaml'), text);
  return path.join(dir, 'gateway.yaml');
}

const BASE = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  api:
    servers: [127.0.0.1:9001]
routes:
  - name: first
    match: { prefix: /a/ }
    upstream: api
  - name: broken
    match: { prefix: /b/ }
    upstream: api
    unsafe_nginx_route: "proxy_bogus_directive on;"
`;

describe('check', () => {
  it('maps an nginx -t error back to the generated line and the YAML entry', async () => {
    const r = await checkConfig({ config: config(BASE) });
    expect(r.ok).toBe(false);
    const err = r.diagnostics.find((d) => d.code === 'GW401');
    expect(err, r.nginxOutput).toBeDefined();
    expect(err!.message).toMatch(/^nginx: unknown directive "proxy_bogus_directive" \(generated conf\.d\/40-servers\.conf:\d+\)$/);
    // the raw snippet itself, not just its route
    expect(err!.at?.path).toBe('routes[1].unsafe_nginx_route');
    expect(formatDiagnostic(err!)).toMatch(/gateway\.yaml:15:5 error GW401 routes\[1\]\.unsafe_nginx_route: nginx: unknown directive/);
  });

  it('substitutes upstream hosts that do not resolve here, says so, and still checks the rest', async () => {
    const text = BASE.replace('[127.0.0.1:9001]', '[billing.invalid:8000]').replace(/  - name: broken[\s\S]*$/, '');
    const r = await checkConfig({ config: config(text) });
    expect(r.ok, r.nginxOutput).toBe(true);
    const sub = r.diagnostics.find((d) => d.code === 'GW402');
    expect(sub?.message).toContain('"billing.invalid" does not resolve here; checked with 127.0.0.1');
    const strict = await checkConfig({ config: config(text), strictDns: true });
    expect(strict.ok).toBe(false);
    expect(strict.nginxOutput).toContain('host not found in upstream');
  });

  it('blames a named location on its own route, not on the last route above it', () => {
    // route "limited" has a 429 named location; it is written after route "last"'s location
    const text = `${BASE.replace(/  - name: broken[\s\S]*$/, '')}  - name: limited
    match: { prefix: /l/ }
    upstream: api
    rate_limits: [slow]
  - name: last
    match: { prefix: /z/ }
    upstream: api
limits:
  rate:
    slow: { rate: 1r/s }
`;
    const r = compile('gateway.yaml', { text });
    expect(r.ok).toBe(true);
    const conf = r.files!['conf.d/40-servers.conf'];
    const lines = conf.split('\n');
    const named = lines.findIndex((l) => l.includes('location @gw_route_limited_429'));
    const lastRoute = lines.findIndex((l) => l.includes('# route last (routes[2])'));
    expect(lastRoute).toBeGreaterThan(0);
    expect(named).toBeGreaterThan(lastRoute); // the case the old lookup got wrong
    const inNamed = named + 2; // a directive inside the named location (1-based line numbers)
    // the printer's line map (what check uses) names the entry behind each generated line
    const { files, lineOrigins } = render(r.model!, FEATURES);
    expect(files['conf.d/40-servers.conf']).toBe(conf);
    expect(lineOrigins['conf.d/40-servers.conf'][inNamed - 1]?.path).toBe('routes[1]');
    const zoneLine = r.files!['conf.d/10-limits.conf'].split('\n').findIndex((l) => l.includes('zone=gw_rl_slow')) + 1;
    expect(lineOrigins['conf.d/10-limits.conf'][zoneLine - 1]?.path).toBe('limits.rate.slow');
    // every line is mapped (the map has one entry per line of the file)
    expect(lineOrigins['conf.d/40-servers.conf'].length).toBe(conf.split('\n').length - 1);
  });

  it('positions every nginx error: an http-level snippet, and a listen address this machine lacks', async () => {
    const http = BASE.replace(/  - name: broken[\s\S]*$/, '').replace('version: 1\n', 'version: 1\nglobal:\n  unsafe_nginx_http: "bogus_http_directive on;"\n');
    const r = await checkConfig({ config: config(http) });
    expect(r.ok).toBe(false);
    const err = r.diagnostics.find((d) => d.code === 'GW401')!;
    expect(formatDiagnostic(err)).toMatch(/gateway\.yaml:3:3 error GW401 global\.unsafe_nginx_http: nginx: unknown directive "bogus_http_directive"/);

    // nginx -t binds its sockets: an address of the target machine is checked on all addresses
    const foreign = BASE.replace(/  - name: broken[\s\S]*$/, '').replace('    port: 8080\n', '    port: 8080\n    address: 192.0.2.10\n');
    const f = await checkConfig({ config: config(foreign) });
    expect(f.ok, f.nginxOutput).toBe(true);
    expect(f.diagnostics.map(formatDiagnostic)).toContainEqual(
      expect.stringMatching(/gateway\.yaml:3:5 warning GW247 listeners\[0\]: listen address 192\.0\.2\.10 is not an address of this machine/),
    );
  });
});
