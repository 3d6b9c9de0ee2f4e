// deploy with real compiler output (src/build): the manifest's readiness endpoint (status
// listener), quoted pid/error_log paths and mime.types all go through the deploy path.

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { writeBuild } from '../../src/build/write.ts';
import { run as runReleases } from '../../src/commands/releases.ts';
import { run as runRollback } from '../../src/commands/rollback.ts';
import { deploy, DeployError, rollback } from '../../src/deploy/deploy.ts';
import { stopMaster } from '../../src/deploy/nginx.ts';
import { probePath } from '../../src/deploy/ready.ts';
import { createSelfSigned } from '../../src/tls/selfsigned.ts';
import { childPids, processTitleIncludes, readPid } from '../../src/runtime/nginx/index.ts';
import { tempDir } from './helpers.ts';
import { get, readSse } from '../support/http.ts';
import { capture } from '../support/capture.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function buildFrom(root: string, name: string, yaml: string): Promise<{ dir: string; hash: string }> {
  const src = path.join(root, `${name}.yaml`);
  fs.writeFileSync(src, yaml);
  const r = await compile(src, { availableModules: { brotli: false } } as Parameters<typeof compile>[1]);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  expect(r.ok).toBe(true);
  const dir = path.join(root, `dist-${name}`);
  writeBuild(dir, r.files!);
  return { dir, hash: r.model!.source.hash };
}

describe('deploy of compiled builds', () => {
  it('deploys, switches and rolls back gatewayctl build output', async () => {
    const ups: EchoUpstream[] = [await startEchoUpstream({ id: 'one' }), await startEchoUpstream({ id: 'two' })];
    cleanup.push(() => Promise.all(ups.map((u) => u.close())));
    const root = await tempDir('compiled');
    const target = path.join(root, 'target');
    cleanup.push(() => fsp.rm(root, { recursive: true, force: true }));
    cleanup.push(() => stopMaster(path.join(target, 'run', 'nginx.pid')));
    const [port, status] = [await freePort(), await freePort()];
    const yaml = (up: EchoUpstream) => `version: 1
global:
  worker_processes: 1
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  app:
    servers: [127.0.0.1:${up.port}]
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: app
`;
    const b1 = await buildFrom(root, 'v1', yaml(ups[0]!));
    const b2 = await buildFrom(root, 'v2', yaml(ups[1]!));
    const man = JSON.parse(fs.readFileSync(path.join(b1.dir, 'manifest.json'), 'utf8'));
    expect(man.readiness.listen).toBe(`127.0.0.1:${status}`);

    const r1 = await deploy({ from: b1.dir, target, readyTimeoutMs: 10_000 });
    expect(r1.started).toBe(true);
    expect(JSON.parse((await get(port, '/api/x')).body).id).toBe('one');
    const r2 = await deploy({ from: b2.dir, target, readyTimeoutMs: 10_000 });
    expect(r2.status).toBe('deployed');
    expect(JSON.parse((await get(port, '/api/x')).body).id).toBe('two');
    expect(JSON.parse((await get(status, '/ready')).body)).toEqual({ status: 'ready', config: b2.hash });
    expect((await deploy({ from: b2.dir, target })).status).toBe('unchanged');

    const rb = await rollback({ target, readyTimeoutMs: 10_000 });
    expect(rb.release).toBe(r1.release);
    expect(JSON.parse((await get(port, '/api/x')).body).id).toBe('one');
    expect(JSON.parse((await get(status, '/ready')).body).config).toBe(b1.hash);
  });

  // Without a status listener, /ready lives on the public listener; with server_names the
  // catch-all server answers other names with 444, and on TLS refuses the handshake
  // ("unrecognized name") without the right SNI. deploy sends the configured name.
  for (const tls of [false, true]) {
    it(`deploys a config with server_names and status: false (${tls ? 'TLS, self-signed' : 'plain HTTP'})`, async () => {
      const up = await startEchoUpstream({ id: 'named' });
      cleanup.push(() => up.close());
      const root = await tempDir('named');
      const target = path.join(root, 'target');
      cleanup.push(() => fsp.rm(root, { recursive: true, force: true }));
      cleanup.push(() => stopMaster(path.join(target, 'run', 'nginx.pid')));
      const port = await freePort();
      let tlsYaml = '';
      if (tls) {
        const pair = await createSelfSigned({ domains: ['api.example.test'], outDir: path.join(root, 'pki'), days: 2 });
        tlsYaml = `    tls: { cert: ${JSON.stringify(pair.cert)}, key: ${JSON.stringify(pair.key)} }\n`;
      }
      const yaml = (label: string) => `version: 1
global:
  worker_processes: 1
  status: false
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
    server_names: ["*.example.test", api.example.test]
${tlsYaml}upstreams:
  app:
    servers: [127.0.0.1:${up.port}]
routes:
  - name: ${label}
    match: { prefix: /api/ }
    upstream: app
`;
      const b1 = await buildFrom(root, 'v1', yaml('one'));
      const b2 = await buildFrom(root, 'v2', yaml('two'));
      const man = JSON.parse(fs.readFileSync(path.join(b1.dir, 'manifest.json'), 'utf8'));
      expect(man.readiness).toEqual({ path: '/ready', listen: `127.0.0.1:${port}`, host: 'api.example.test', health: '/health' });

      const log: string[] = [];
      const r1 = await deploy({ from: b1.dir, target, readyTimeoutMs: 10_000, log: (l) => log.push(l) });
      expect(r1.started).toBe(true);
      const r2 = await deploy({ from: b2.dir, target, readyTimeoutMs: 10_000, log: (l) => log.push(l) });
      expect(r2.status).toBe('deployed');
      expect(log.join('\n')).toMatch(/answered on shadow ports/);
      const named = { path: '/ready', listen: `127.0.0.1:${port}`, tls, host: 'api.example.test' };
      expect(JSON.parse((await probePath(named, '/ready')).body).config).toBe(b2.hash);
      // Without the name the gateway does not answer: the probe really needs Host/SNI.
      const anonymous = await probePath({ ...named, host: undefined }, '/ready');
      if (tls) expect(anonymous.error).toMatch(/unrecognized name/);
      else expect(anonymous.status).toBe(404); // unknown_host default
    });
  }

  it('retires the old worker set after global.worker_shutdown_timeout although a stream is still open', { timeout: 60_000 }, async () => {
    const up = await startEchoUpstream({ id: 'sse' });
    cleanup.push(() => up.close());
    const root = await tempDir('shutdown');
    const target = path.join(root, 'target');
    cleanup.push(() => fsp.rm(root, { recursive: true, force: true }));
    cleanup.push(() => stopMaster(path.join(target, 'run', 'nginx.pid')));
    const [port, status] = [await freePort(), await freePort()];
    const yaml = (label: string) => `version: 1
global:
  worker_processes: 1
  worker_shutdown_timeout: 2s
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  app:
    servers: [127.0.0.1:${up.port}]
routes:
  - name: events-${label}
    match: { prefix: /sse }
    upstream: app
    streaming: true
`;
    const b1 = await buildFrom(root, 'v1', yaml('one'));
    const b2 = await buildFrom(root, 'v2', yaml('two'));
    expect(fs.readFileSync(path.join(b1.dir, 'nginx.conf'), 'utf8')).toMatch(/^worker_shutdown_timeout 2s;$/m);
    await deploy({ from: b1.dir, target, readyTimeoutMs: 10_000 });
    const master = (await readPid(path.join(target, 'run'), { pidFile: path.join(target, 'run', 'nginx.pid') }))!;
    // (a worker that exits between the listing and the read is not retiring any more)
    const retiring = () => childPids(master).filter((p) => processTitleIncludes(p, 'shutting down'));

    // A 30-second stream (300 events, 100 ms apart) is open on the v1 worker during the deploy.
    const stream = readSse(port, '/sse?events=300&intervalMs=100', 60_000);
    await new Promise((r) => setTimeout(r, 500));
    await deploy({ from: b2.dir, target, readyTimeoutMs: 10_000 });
    expect(retiring().length).toBeGreaterThan(0); // the old worker still serves the stream

    // nginx closes what is left 2 s after the reload; give it a generous margin.
    const deadline = Date.now() + 10_000;
    while (retiring().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(retiring()).toEqual([]);
    const sse = await stream;
    expect(sse.error).not.toBeNull(); // the trade-off: the stream was cut
    expect(sse.ids.length).toBeGreaterThan(0);
    expect(sse.ids.length).toBeLessThan(300);
  });

  it('tells the ACME-pending build and the issued build of one gateway.yaml apart', { timeout: 60_000 }, async () => {
    const up = await startEchoUpstream({ id: 'acme' });
    cleanup.push(() => up.close());
    const root = await tempDir('acme-ids');
    const target = path.join(root, 'target');
    cleanup.push(() => fsp.rm(root, { recursive: true, force: true }));
    cleanup.push(() => stopMaster(path.join(target, 'run', 'nginx.pid')));
    const [tlsPort, httpPort, status] = [await freePort(), await freePort(), await freePort()];
    const certs = path.join(root, 'certs');
    const src = path.join(root, 'gateway.yaml');
    fs.writeFileSync(
      src,
      `version: 1
global:
  worker_processes: 1
  status: { listen: "127.0.0.1:${status}" }
tls:
  acme:
    email: ops@example.test
    domains: [api.example.test]
    staging: true
    certs_dir: ${JSON.stringify(certs)}
    webroot: ${JSON.stringify(path.join(root, 'webroot'))}
listeners:
  - name: https
    address: 127.0.0.1
    port: ${tlsPort}
    server_names: [api.example.test]
    tls: { acme: true, redirect_from: ${httpPort} }
upstreams:
  app:
    servers: [127.0.0.1:${up.port}]
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: app
`,
    );
    const build = (name: string) => {
      const r = compile(src, { availableModules: { brotli: false } } as Parameters<typeof compile>[1]);
      expect(r.ok).toBe(true);
      const dir = path.join(root, name);
      writeBuild(dir, r.files!);
      return dir;
    };
    const pending = build('dist-pending');
    const pair = await createSelfSigned({ domains: ['api.example.test'], outDir: path.join(root, 'pki'), days: 2 });
    fs.mkdirSync(path.join(certs, 'api.example.test'), { recursive: true });
    fs.copyFileSync(pair.cert, path.join(certs, 'api.example.test', 'fullchain.pem'));
    fs.copyFileSync(pair.key, path.join(certs, 'api.example.test', 'privkey.pem'));
    const issued = build('dist-issued');

    const r1 = await deploy({ from: pending, target, readyTimeoutMs: 10_000 });
    expect(r1.certificatePending).toEqual(['https']);
    const r2 = await deploy({ from: issued, target, readyTimeoutMs: 10_000 });
    expect(r2.status).toBe('deployed');
    expect(r2.certificatePending).toBeUndefined();
    expect(r2.inputHash).toBe(r1.inputHash);
    expect(r2.release).not.toBe(r1.release);
    expect(r2.outputHash).not.toBe(r1.outputHash);

    const list = await capture(() => runReleases({ target }));
    expect(list.stdout).toMatch(new RegExp(`${r1.release} .*previous \\(TLS pending: https\\)`));
    // The input hash names both: refused, listing both, nothing changes.
    const amb = await rollback({ target, to: r1.inputHash.slice(0, 12) }).catch((e: unknown) => e);
    expect(amb).toBeInstanceOf(DeployError);
    expect((amb as DeployError).detail.split('\n')).toHaveLength(2);
    // A rollback to the pending release says that it serves plain HTTP only.
    const rb = await capture(() => runRollback({ target, readyTimeout: 10 }));
    expect(rb.code).toBe(0);
    expect(rb.stdout).toContain(`rolled back to ${r1.release}`);
    expect(rb.stderr).toContain(`note: release ${r1.release} was built before the ACME certificate was issued: listener(s) https serve plain HTTP only`);
  });
});


