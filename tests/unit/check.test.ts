// `gatewayctl check`: nginx's own error, the generated file and line, and the gateway.yaml
// entry behind it; hosts that do not resolve here are substituted and reported.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../src/commands/check.ts';
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
    expect(err!.at?.path).toBe('routes[1]');
    expect(formatDiagnostic(err!)).toMatch(/gateway\.yaml:12:5 error GW401 routes\[1\]: nginx: unknown directive/);
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
});
