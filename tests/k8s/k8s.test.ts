// `gatewayctl build --target k8s`: every manifest validates against the Kubernetes schemas,
// secrets never land in the ConfigMap, the pod template's hash rolls the pods on a change,
// and the config volume — laid out as kubelet mounts it (read-only, symlinked through
// `..data`) — runs on real nginx: includes, the njs bundle, the key map and the TLS pair from
// the Secret resolve, /ready answers the config hash on the probe's port.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { compileK8s } from '../../src/commands/build-k8s.ts';
import { run as build } from '../../src/commands/build.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { findOpenssl } from '../../src/tls/openssl.ts';
import { capture } from '../support/capture.ts';
import { fileMode } from '../support/files.ts';
import { httpsRequest, send, sendCounted } from '../support/http.ts';
import { startGateway, stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { byKind, mountConfigVolume, parseObjects, validateObjects } from './helpers.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'gw-k8s-'));
let upstream: EchoUpstream;
let ports: number[];
let ca = '';
const KEY = `gw_live_${'B'.repeat(43)}`;
const KEY_HASH = createHash('sha256').update(KEY).digest('hex');

function project(extra = ''): string {
  const [http, https, status] = ports;
  return `version: 1
global:
  status: { listen: 127.0.0.1:${status} }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${http}
  - name: secure
    port: ${https}
    server_names: [gw.example.test]
    tls: { cert: ${work}/tls/gw.crt, key: ${work}/tls/gw.key }
upstreams:
  api:
    servers: [${upstream.address}]
limits:
  rate:
    per_ip: { rate: 10r/s, burst: 20 }
auth:
  api_keys: { file: keys.yaml }
metrics:
  allow: [127.0.0.1, 10.0.0.0/8]
fleet:
  replicas: 3
  limits: affinity
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: api
    auth: api_key
    rate_limits: [per_ip]
  - name: events
    match: { prefix: /events/ }
    upstream: api
    streaming: true
    timeouts: { read: 300s }
${extra}`;
}

function writeProject(text: string): string {
  const file = path.join(work, 'gateway.yaml');
  writeFileSync(file, text);
  return file;
}

function k8s(text: string) {
  const r = compileK8s(writeProject(text), { env: {} });
  expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
  return r.k8s!;
}

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'api' });
  ports = await freePorts(3);
  execFileSync('mkdir', ['-p', path.join(work, 'tls')]);
  execFileSync(findOpenssl(), ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=gw.example.test', '-addext', 'subjectAltName=DNS:gw.example.test', '-keyout', path.join(work, 'tls/gw.key'), '-out', path.join(work, 'tls/gw.crt')], { stdio: 'ignore' });
  ca = readFileSync(path.join(work, 'tls/gw.crt'), 'utf8');
  writeFileSync(
    path.join(work, 'keys.yaml'),
    `version: 1\nkeys:\n  - id: key_0a1b2c3d4e5f\n    name: acme\n    hash: ${KEY_HASH}\n    role: admin\n    tier: null\n    created: 2026-01-05T10:00:00.000Z\n    expires: null\n    revoked: null\n    replacedBy: null\n`,
  );
});

afterAll(async () => {
  await stopAllGateways();
  await upstream?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('build --target k8s', () => {
  it('every manifest validates against the Kubernetes schemas, and the kustomization lists exactly them', () => {
    const files = k8s(project());
    const objects = parseObjects(files);
    expect(validateObjects(objects)).toEqual([]);
    const kustomization = YAML.parse(files['kustomization.yaml']);
    expect(kustomization.kind).toBe('Kustomization');
    expect([...kustomization.resources].sort()).toEqual(Object.keys(objects).sort());
    expect(Object.values(objects).map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Secret', 'Service', 'Service', 'Service', 'ServiceMonitor']);
  });

  it('puts the key map, the TLS pair and nothing else secret in the Secret; the ConfigMap holds no secret', () => {
    const objects = parseObjects(k8s(project()));
    const [cm] = byKind(objects, 'ConfigMap');
    const [secret] = byKind(objects, 'Secret');
    expect(Object.keys(secret.data).sort()).toEqual(['conf.d_keys.map', 'tls_secure.crt', 'tls_secure.key']);
    expect(Buffer.from(secret.data['tls_secure.key'], 'base64').toString()).toBe(readFileSync(path.join(work, 'tls/gw.key'), 'utf8'));
    const configText = JSON.stringify(cm.data);
    expect(configText).not.toContain('PRIVATE KEY');
    expect(configText).not.toContain(KEY_HASH);
    expect(Object.keys(cm.data)).toContain('njs_gateway.js');
    expect(cm.data['nginx.conf']).toContain('js_path "njs/";');
    // secret files are read by nginx's master only: 0400 in the volume
    const dep = byKind(objects, 'Deployment')[0];
    const sources = dep.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'config').projected.sources;
    expect(sources[1].secret.items.every((i: { mode: number }) => i.mode === 0o400)).toBe(true);
  });

  it('Deployment: probes on the status listener, drain, grace ≥ worker_shutdown_timeout, replicas from fleet, read-only config', () => {
    const objects = parseObjects(k8s(project()));
    const dep = byKind(objects, 'Deployment')[0];
    const pod = dep.spec.template.spec;
    const c = pod.containers[0];
    expect(dep.spec.replicas).toBe(3);
    expect(c.image).toBe('nginx:1.27');
    expect(c.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'status' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/health', port: 'status' });
    expect(c.ports.find((p: { name: string }) => p.name === 'status').containerPort).toBe(ports[2]);
    // the streaming route's 300s read timeout sets worker_shutdown_timeout; the pod waits for it
    const cm = byKind(objects, 'ConfigMap')[0];
    expect(cm.data['nginx.conf']).toContain('worker_shutdown_timeout 300s;');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(300 + 5);
    expect(c.lifecycle.preStop.exec.command).toEqual(['sleep', '5']);
    expect(c.volumeMounts[0]).toEqual({ name: 'config', mountPath: '/etc/gatewayctl', readOnly: true });
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    // affinity: the Service pins a client to one pod
    const svc = byKind(objects, 'Service').find((s) => s.metadata.name === 'gateway')!;
    expect(svc.spec.sessionAffinity).toBe('ClientIP');
    expect(svc.spec.ports.map((p: { port: number }) => p.port)).toEqual([ports[0], ports[1]]);
    // every pod's status listener by DNS, for `gatewayctl replicas --dns`
    const headless = byKind(objects, 'Service').find((s) => s.metadata.name === 'gateway-replicas')!;
    expect(headless.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true, ports: [{ name: 'status', port: ports[2], targetPort: ports[2] }] });
  });

  it('the pod template hash follows the config: same input, same bytes; a changed route rolls the pods', () => {
    const a = k8s(project());
    const b = k8s(project());
    expect(b).toEqual(a);
    const c = k8s(project().replace('burst: 20', 'burst: 30'));
    const hash = (f: Record<string, string>) => byKind(parseObjects(f), 'Deployment')[0].spec.template.metadata.annotations['gatewayctl.io/config-sha256'];
    expect(hash(c)).not.toBe(hash(a));
    expect(hash(c)).toMatch(/^[0-9a-f]{64}$/);
    // the ConfigMap is a new, immutable object the new pods mount; the old one stays for the old ReplicaSet
    const cm = (f: Record<string, string>) => byKind(parseObjects(f), 'ConfigMap')[0];
    const mountedName = (f: Record<string, string>) => byKind(parseObjects(f), 'Deployment')[0].spec.template.spec.volumes[0].projected.sources[0].configMap.name;
    expect(cm(c).metadata.name).not.toBe(cm(a).metadata.name);
    expect(cm(a).metadata.name).toMatch(/^gateway-config-[0-9a-f]{10}$/);
    expect([mountedName(a), mountedName(c)]).toEqual([cm(a).metadata.name, cm(c).metadata.name]);
    expect(cm(a).immutable).toBe(true);
    expect(byKind(parseObjects(a), 'Secret')[0].metadata.name).toBe(byKind(parseObjects(c), 'Secret')[0].metadata.name); // unchanged secrets, same object
    // a renewed certificate (only in the Secret) rolls them too
    writeFileSync(path.join(work, 'tls/gw.crt'), `${ca}\n`);
    try {
      expect(hash(k8s(project()))).not.toBe(hash(a));
    } finally {
      writeFileSync(path.join(work, 'tls/gw.crt'), ca);
    }
  });

  it('without a status listener the probes go to the first plain listener, with its Host', () => {
    const text = project().replace(`  status: { listen: 127.0.0.1:${ports[2]} }\n`, '  status: false\n').replace('metrics:\n  allow: [127.0.0.1, 10.0.0.0/8]\n', '');
    const plain = text.replace('    address: 127.0.0.1\n', '    address: 127.0.0.1\n    server_names: [api.example.test]\n');
    const objects = parseObjects(k8s(plain));
    expect(validateObjects(objects)).toEqual([]);
    const c = byKind(objects, 'Deployment')[0].spec.template.spec.containers[0];
    expect(c.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'public', httpHeaders: [{ name: 'Host', value: 'api.example.test' }] });
    expect(c.livenessProbe.httpGet.path).toBe('/health');
    expect(byKind(objects, 'Service').map((s) => s.metadata.name)).toEqual(['gateway']);
  });

  it('autoscaling: an HPA from fleet.replicas to max_replicas, and the Deployment leaves replicas to it', () => {
    const objects = parseObjects(k8s(project('kubernetes:\n  autoscaling: { max_replicas: 6, cpu_percent: 60 }\n  service_monitor: false\n')));
    expect(validateObjects(objects)).toEqual([]);
    const hpa = byKind(objects, 'HorizontalPodAutoscaler')[0];
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([3, 6]);
    expect(byKind(objects, 'Deployment')[0].spec.replicas).toBeUndefined();
    expect(byKind(objects, 'ServiceMonitor')).toEqual([]);
  });

  it('the mounted volume runs on real nginx: includes, njs, key map and certificate through the symlinks', async () => {
    const objects = parseObjects(k8s(project()));
    // the access log goes to the container's stdout (a pipe there; a socket here, which
    // cannot be opened by name): to a file under the prefix for this run
    const dir = mountConfigVolume(objects, { '"/dev/stdout"': '"logs/access.log"' });
    const dep = byKind(objects, 'Deployment')[0];
    expect(byKind(objects, 'ConfigMap')[0].data['nginx.conf']).toMatch(/error_log "stderr" warn;[\s\S]*access_log "\/dev\/stdout" gw_json;/);
    const gw = await startGateway({ distDir: dir, ports });
    try {
      await withErrorLog(gw, async () => {
        const ready = await send({ port: ports[2], path: '/ready' });
        expect(ready.status).toBe(200);
        expect((ready.json as { config: string }).config).toBe(dep.spec.template.metadata.annotations['gatewayctl.io/input-sha256']);
        expect((await send({ port: ports[2], path: '/health' })).status).toBe(200);
        // the key map from the Secret: no key 401, a key 200 through to the upstream
        expect((await send({ port: ports[0], path: '/api/x' })).status).toBe(401);
        const ok = await send({ port: ports[0], path: '/api/x', headers: { 'X-API-Key': KEY } });
        expect(ok.status).toBe(200);
        expect((ok.json as { id: string }).id).toBe('api');
        // the certificate from the Secret
        const tls = await httpsRequest(ports[1], 'gw.example.test', ca, '/ready');
        expect(tls.status).toBe(200);
        // metrics from the status listener (the metrics Service's port)
        expect((await sendCounted({ port: ports[2], path: '/metrics' })).text).toMatch(/^gatewayctl_requests_total\{route="api"/m);
      });
    } finally {
      await gw.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kubectl kustomize renders the directory as kubectl apply -k would send it (namespace applied, every object valid)', async () => {
    const text = project('kubernetes:\n  namespace: edge\n');
    const expected = Object.values(parseObjects(k8s(text))).map((o) => `${o.kind}/${o.metadata.name}`);
    const config = writeProject(text);
    const out = path.join(work, 'k8s-kustomize');
    expect((await capture(() => build({ config, out, target: 'k8s' }))).code).toBe(0);
    const kubectl = spawnSync('kubectl', ['kustomize', out], { encoding: 'utf8', timeout: 60_000 });
    expect(kubectl.error, 'kubectl (with its built-in kustomize) is part of this machine kind').toBeUndefined();
    expect(kubectl.status, kubectl.stderr).toBe(0);
    const rendered = YAML.parseAllDocuments(kubectl.stdout).map((d) => d.toJSON());
    expect(rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(expected.sort());
    expect(rendered.every((o) => o.metadata.namespace === 'edge')).toBe(true);
    expect(validateObjects(Object.fromEntries(rendered.map((o, i) => [`${i}`, o])))).toEqual([]);
  });

  it('gatewayctl build --target k8s writes the kustomize directory (secret.yaml 0600) and replaces only its own output', async () => {
    const config = writeProject(project());
    const out = path.join(work, 'k8s-out');
    const first = await capture(() => build({ config, out, target: 'k8s' }));
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`kubectl apply -k ${out}`);
    expect(fileMode(path.join(out, 'secret.yaml'))).toBe(0o600);
    expect(fileMode(path.join(out, 'deployment.yaml'))).toBe(0o644);
    expect((await capture(() => build({ config, out, target: 'k8s', check: true }))).code).toBe(0);
    expect((await capture(() => build({ config, out, target: 'k8s' }))).code).toBe(0);
    writeFileSync(path.join(out, 'mine.txt'), 'x');
    const refused = await capture(() => build({ config, out, target: 'k8s' }));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('GW610');
  });
});
