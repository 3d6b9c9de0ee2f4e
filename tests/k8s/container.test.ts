// The Deployment's pod, run for real in a container engine: the image has the official
// nginx image's layout (scripts/nginx-image.sh: the project runtime's nginx + njs packages,
// `docker import`ed, no registry needed), the engine is a private dockerd
// (scripts/provision-docker.sh installs Debian's docker.io when missing). The container is
// started the way the kubelet would start it from deployment.yaml — its command, the config
// volume at /etc/gatewayctl read-only (symlinked through ..data), a read-only root with the
// emptyDirs as tmpfs, the capabilities it keeps, no privilege escalation — and then
// terminated as the kubelet does: the preStop hook, then the image's stop signal.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { writeBuild } from '../../src/build/write.ts';
import { compileK8s } from '../../src/commands/build-k8s.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { httpsRequest, send, sendCounted, waitUntil } from '../support/http.ts';
import { findOpenssl } from '../../src/tls/openssl.ts';
import { freePorts } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { byKind, mountConfigVolume, parseObjects, type K8sObject } from './helpers.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'gw-k8s-container-'));
const engineDir = process.env.GATEWAYCTL_DOCKER_DIR ?? path.join(os.tmpdir(), 'gatewayctl-docker');
let dockerHost = '';
let image = '';
let startedEngine = false;
let upstream: EchoUpstream;
const containers: string[] = [];

const script = (name: string, args: string[] = [], env: Record<string, string> = {}): string => {
  const out = execFileSync('bash', [path.join('scripts', name), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 540_000 });
  return out.trim().split('\n').pop()!;
};
/** docker without blocking the event loop (requests in flight meanwhile); rejects on a non-zero exit. */
const dockerAsync = (...args: string[]) => promisify(execFile)('docker', args, { env: { ...process.env, DOCKER_HOST: dockerHost }, timeout: 120_000 });
const docker = (...args: string[]) => spawnSync('docker', args, { encoding: 'utf8', env: { ...process.env, DOCKER_HOST: dockerHost }, timeout: 60_000 });

/**
 * Until the container listens on `port` (host network). A container that stopped fails with its
 * logs; a `docker inspect` that fails (a busy engine) is not taken for a stopped container.
 */
async function untilListening(name: string, port: number): Promise<void> {
  const listening = () => spawnSync('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]).status === 0;
  const stopped = () => {
    const i = docker('inspect', '-f', '{{.State.Running}}', name);
    return i.status === 0 && i.stdout.trim() === 'false';
  };
  await waitUntil(() => listening() || stopped(), 20_000, `container ${name} to listen on ${port}`);
  if (!listening()) {
    const l = docker('logs', name);
    throw new Error(`container ${name} stopped before listening on ${port}:\n${l.stdout}\n${l.stderr}`);
  }
}

beforeAll(async () => {
  startedEngine = spawnSync('docker', ['version'], { env: { ...process.env, DOCKER_HOST: `unix://${engineDir}/docker.sock` } }).status !== 0;
  dockerHost = script('provision-docker.sh', ['--dir', engineDir, '--quiet']);
  image = script('nginx-image.sh', [], { DOCKER_HOST: dockerHost });
  upstream = await startEchoUpstream({ id: 'api' });
}, 600_000);

afterAll(() => {
  for (const c of containers) docker('rm', '-f', c);
  void upstream?.close();
  rmSync(work, { recursive: true, force: true });
  if (startedEngine) {
    // the engine this suite started (its pid file), and nothing else
    const pid = Number(spawnSync('cat', [path.join(engineDir, 'dockerd.pid')], { encoding: 'utf8' }).stdout.trim());
    if (pid > 0) process.kill(pid, 'SIGTERM');
  }
});

/** `docker run` arguments for the Deployment's container, as the kubelet would run it. */
function runArgs(dep: K8sObject, volumeDir: string, name: string): string[] {
  const spec = dep.spec.template.spec;
  const c = spec.containers[0];
  const args = ['run', '-d', '--name', name, '--network', 'host', '--stop-signal', 'SIGQUIT'];
  if (c.securityContext.readOnlyRootFilesystem) args.push('--read-only');
  if (c.securityContext.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  for (const cap of c.securityContext.capabilities.drop) args.push('--cap-drop', cap);
  for (const cap of c.securityContext.capabilities.add) args.push('--cap-add', cap);
  for (const m of c.volumeMounts) {
    const v = spec.volumes.find((x: K8sObject) => x.name === m.name);
    if (v.projected) args.push('-v', `${volumeDir}:${m.mountPath}:ro`);
    else if (v.emptyDir) args.push('--tmpfs', `${m.mountPath}:mode=0777`);
  }
  args.push('--entrypoint', c.command[0], image, ...c.command.slice(1));
  return args;
}

describe('the k8s Deployment in a container engine', () => {
  it('serves from the mounted ConfigMap/Secret on a read-only root, logs to stdout, and finishes a request in flight when stopped', async () => {
    const [http, status, https] = await freePorts(3);
    // a certificate and an API key: the Secret's files, read by nginx's master with the capabilities it keeps
    execFileSync(findOpenssl(), ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=gw.example.test', '-addext', 'subjectAltName=DNS:gw.example.test', '-keyout', path.join(work, 'gw.key'), '-out', path.join(work, 'gw.crt')], { stdio: 'ignore' });
    const key = `gw_live_${'C'.repeat(43)}`;
    writeFileSync(
      path.join(work, 'keys.yaml'),
      `version: 1\nkeys:\n  - id: key_0a1b2c3d4e5f\n    name: acme\n    hash: ${createHash('sha256').update(key).digest('hex')}\n    role: admin\n    tier: null\n    created: 2026-01-05T10:00:00.000Z\n    expires: null\n    revoked: null\n    replacedBy: null\n`,
    );
    const config = path.join(work, 'gateway.yaml');
    writeFileSync(
      config,
      `version: 1
global:
  status: { listen: 127.0.0.1:${status} }
listeners:
  - name: public
    port: ${http}
  - name: secure
    port: ${https}
    server_names: [gw.example.test]
    tls: { cert: gw.crt, key: gw.key }
upstreams:
  api:
    servers: [${upstream.address}]
caches:
  models: { size: 1m, max_size: 10m, inactive: 1m }
metrics:
  allow: [127.0.0.1, 10.0.0.0/8]
auth:
  api_keys: { file: keys.yaml }
routes:
  - name: models
    match: { prefix: /v1/models }
    upstream: api
    cache: { zone: models, ttl: { "200": 30s } }
  - name: api
    match: { prefix: /api/ }
    upstream: api
  - name: private
    match: { prefix: /private/ }
    upstream: api
    auth: api_key
  - name: slow
    match: { exact: /slow }
    upstream: api
kubernetes:
  drain_seconds: 1
`,
    );
    const r = compileK8s(config, { env: {} });
    expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
    const objects = parseObjects(r.k8s!);
    const dep = byKind(objects, 'Deployment')[0];
    const volume = mountConfigVolume(objects, {}, { inPlace: true });
    const name = `gw-k8s-${process.pid}`;
    containers.push(name);
    const run = docker(...runArgs(dep, volume, name));
    expect(run.status, run.stderr).toBe(0);
    const logs = () => {
      const l = docker('logs', name);
      return { out: l.stdout, err: l.stderr };
    };
    try {
      await untilListening(name, status);
      const c = dep.spec.template.spec.containers[0];
      const ready = await send({ port: status, path: c.readinessProbe.httpGet.path });
      expect(ready.status, JSON.stringify(logs())).toBe(200);
      expect((ready.json as { config: string }).config).toBe(dep.spec.template.metadata.annotations['gatewayctl.io/input-sha256']);
      expect((await send({ port: status, path: c.livenessProbe.httpGet.path })).status).toBe(200);
      const api = await send({ port: http, path: '/api/x' });
      expect(api.status).toBe(200);
      expect((api.json as { id: string }).id).toBe('api');
      // the key map and the certificate from the Secret
      expect((await send({ port: http, path: '/private/x' })).status).toBe(401);
      expect((await send({ port: http, path: '/private/x', headers: { 'X-API-Key': key } })).status).toBe(200);
      expect((await httpsRequest(https, 'gw.example.test', readFileSync(path.join(work, 'gw.crt'), 'utf8'), '/ready')).status).toBe(200);
      // the cache on its emptyDir, under the read-only root
      expect((await send({ port: http, path: '/v1/models' })).status).toBe(200);
      const hit = await send({ port: http, path: '/v1/models' });
      expect(hit.headers['x-cache-status'] ?? hit.status).toBeTruthy();
      expect((await sendCounted({ port: status, path: '/metrics' })).text).toMatch(/^gatewayctl_requests_total\{route="api"/m);
      // the access log is the container's stdout
      await waitUntil(() => /"route":"api"/.test(logs().out), 5000, 'the access log line on stdout');
      // termination as the kubelet does it: the preStop hook (the drain wait), then the
      // image's stop signal (SIGQUIT): a request in flight still completes, nginx exits 0
      const hits = upstream.hits;
      const inFlight = send({ port: http, path: '/slow?ms=2000' });
      await waitUntil(() => upstream.hits > hits, 5000, 'the slow request to reach the upstream');
      await dockerAsync('exec', name, ...c.lifecycle.preStop.exec.command);
      await dockerAsync('stop', '-t', String(dep.spec.template.spec.terminationGracePeriodSeconds), name);
      const slow = await inFlight;
      expect(slow.status).toBe(200);
      expect(docker('inspect', '-f', '{{.State.ExitCode}}', name).stdout.trim(), logs().err).toBe('0');
      expect(logs().err).not.toMatch(/\[(emerg|alert|crit)\]/);
    } finally {
      rmSync(volume, { recursive: true, force: true });
    }
  });
});

describe('docker/Dockerfile (the image for users) in a container engine', () => {
  it('builds FROM an image with the official layout and serves the build baked in; SIGQUIT stops it gracefully', async () => {
    const [http] = await freePorts(1);
    const ctx = mkdtempSync(path.join(work, 'context-'));
    const config = path.join(ctx, 'gateway.yaml');
    writeFileSync(
      config,
      `version: 1
listeners:
  - name: public
    port: ${http}
upstreams:
  api:
    servers: [${upstream.address}]
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: api
  - name: slow
    match: { exact: /slow }
    upstream: api
`,
    );
    const r = compile(config, { env: {} });
    expect(r.ok, r.diagnostics.map(formatDiagnostic).join('\n')).toBe(true);
    writeBuild(path.join(ctx, 'dist'), r.files!);
    // the Dockerfile as users build it, only FROM the local stand-in for nginx:1.27
    const tag = `gatewayctl/gateway-test:${process.pid}`;
    const build = spawnSync('docker', ['build', '-q', '-f', path.resolve('docker/Dockerfile'), '--build-arg', `NGINX_IMAGE=${image}`, '--build-arg', `HEALTH_URL=http://127.0.0.1:${http}/health`, '-t', tag, ctx], {
      encoding: 'utf8',
      env: { ...process.env, DOCKER_HOST: dockerHost, DOCKER_BUILDKIT: '0' },
      timeout: 300_000,
    });
    expect(build.status, build.stderr).toBe(0);
    expect(docker('image', 'inspect', '-f', '{{.Config.StopSignal}}', tag).stdout.trim()).toBe('SIGQUIT');
    const name = `gw-dockerfile-${process.pid}`;
    containers.push(name);
    const run = docker('run', '-d', '--name', name, '--network', 'host', tag);
    expect(run.status, run.stderr).toBe(0);
    await untilListening(name, http);
    const health = await send({ port: http, path: '/health' });
    expect(health.status, docker('logs', name).stderr).toBe(200);
    const ready = await send({ port: http, path: '/ready' });
    expect((ready.json as { config: string }).config).toBe(r.model!.source.hash);
    expect((await send({ port: http, path: '/api/x' })).status).toBe(200);
    await waitUntil(() => /"route":"api"/.test(docker('logs', name).stdout), 5000, 'the access log on stdout');
    const hits = upstream.hits;
    const inFlight = send({ port: http, path: '/slow?ms=2000' });
    await waitUntil(() => upstream.hits > hits, 5000, 'the request to reach the upstream');
    await dockerAsync('stop', '-t', '30', name);
    expect((await inFlight).status).toBe(200);
    expect(docker('inspect', '-f', '{{.State.ExitCode}}', name).stdout.trim()).toBe('0');
    docker('rmi', '-f', tag);
  });
});
