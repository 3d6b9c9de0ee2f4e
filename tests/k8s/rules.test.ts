// What `build --target k8s` refuses or warns about, each at the gateway.yaml key behind it:
// a certificate the Secret cannot carry (GW545), an object over Kubernetes' 1 MiB (GW546),
// metrics Prometheus cannot scrape (GW547), ACME challenges the pods do not answer (GW548).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileK8s } from '../../src/commands/build-k8s.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { generateScaleKeys } from '../../scripts/scale-fixtures.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-k8s-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BASE = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  api:
    servers: [10.0.0.1:9001]
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: api
`;

function lines(text: string): string[] {
  const file = path.join(dir, 'gateway.yaml');
  writeFileSync(file, text);
  return compileK8s(file, { env: {} }).diagnostics.map((d) => formatDiagnostic(d).replace(`${file}:`, 'gateway.yaml:'));
}

describe('build --target k8s refusals', () => {
  it('GW545 a TLS listener whose certificate file is missing', () => {
    const got = lines(BASE.replace('    port: 8080\n', `    port: 8443\n    tls: { cert: ${dir}/absent.crt, key: ${dir}/absent.key }\n`));
    expect(got).toContain(`gateway.yaml:5:5 error GW545 listeners[0].tls: listener public: ${dir}/absent.crt does not exist; the Secret needs the certificate and key files`);
  });

  it('GW545 an ACME certificate not issued yet, GW548 ACME challenges are not answered by the pods', () => {
    const text = `version: 1
tls:
  acme:
    email: ops@example.com
    domains: [api.example.com]
    certs_dir: ${dir}/managed-never-issued
    webroot: ${dir}/acme
listeners:
  - name: https
    port: 443
    tls: { acme: true, redirect_from: 80 }
upstreams:
  api: { servers: [10.0.0.10:8080] }
routes:
  - name: api
    match: { prefix: / }
    upstream: api
`;
    const got = lines(text);
    expect(got.some((l) => /^gateway\.yaml:11:5 error GW545 listeners\[0\]\.tls: listener https: the ACME certificate is not issued yet/.test(l)), got.join('\n')).toBe(true);
    expect(got.some((l) => /^gateway\.yaml:3:3 warning GW548 tls\.acme: ACME challenges are answered from a webroot on the machine that runs gatewayctl tls, not in the pods/.test(l)), got.join('\n')).toBe(true);
  });

  it('GW546 a Secret over 1 MiB (a key map of 12000 keys)', () => {
    generateScaleKeys(path.join(dir, 'keys.yaml'), 12000);
    const got = lines(`${BASE}auth:\n  api_keys: { file: keys.yaml }\nkubernetes: {}\n`);
    expect(
      got.some((l) => /^gateway\.yaml:14:1 error GW546 kubernetes: the Secret \(key map, JWT preload, certificates\) would hold \d+ bytes; Kubernetes stores at most 1 MiB per object$/.test(l)),
      got.join('\n'),
    ).toBe(true);
  });

  it('GW547 metrics that only loopback may scrape, while a ServiceMonitor is emitted', () => {
    expect(lines(`${BASE}metrics: {}\n`)).toContain(
      'gateway.yaml:12:1 warning GW547 metrics: metrics.allow admits only loopback: Prometheus scrapes from another pod and gets 403; add the pod network (e.g. 10.0.0.0/8) to metrics.allow',
    );
    expect(lines(`${BASE}metrics: { allow: [10.0.0.0/8] }\n`)).toEqual([]);
    expect(lines(`${BASE}metrics: {}\nkubernetes: { service_monitor: false }\n`)).toEqual([]);
  });
});
