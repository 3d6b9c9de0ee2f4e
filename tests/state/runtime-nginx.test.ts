// Runtime servers through real nginx (admin_api:): the admin API on the status listener refuses
// calls without the token or with a wrong one and bad input (400 naming the field, nothing
// persisted); a server registered under load takes traffic on the next requests with no reload
// (master and worker pids unchanged) and no failed request, stays after a reload and a
// restart, shows in /admin/status and as drift in `gatewayctl status`; drained it gets no new
// requests; removed it is gone. `gatewayctl servers` drives the same API.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileOrThrow } from '../support/gateway.ts';
import { startGateway, stopAllGateways, withErrorLog, type Gateway } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, sleep, waitUntil } from '../support/http.ts';
import { closeAll, startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { writeBuild } from '../../src/build/write.ts';
import { capture } from '../support/capture.ts';
import { run as serversCommand } from '../../src/commands/servers.ts';
import { run as statusCommand } from '../../src/commands/status.ts';

const TOKEN = 'test-admin-token-0123456789abcdef';

const yaml = (port: number, status: number, a: EchoUpstream) => `
version: 1
global:
  worker_processes: 2
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  pool:
    servers: ["${a.address}"]
    circuit_breaker: { failures: 3 }
    health_check: { path: /healthz, interval: 1s, timeout: 500ms, rise: 1, fall: 2 }
admin_api:
  token: \${ADMIN_TOKEN}
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: pool
`;

let a: EchoUpstream;
let b: EchoUpstream;
let gw: Gateway;
let port: number;
let statusPort: number;
let work: string;
let prefix: string;
let distDir: string;

const admin = (method: string, p: string, body?: unknown, token: string | null = TOKEN) =>
  send({
    port: statusPort,
    method,
    path: `/admin/upstreams${p}`,
    headers: { 'Content-Type': 'application/json', ...(token === null ? {} : { Authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });

const pids = (master: number) => [master, ...execFileSync('pgrep', ['-P', String(master)], { encoding: 'utf8' }).trim().split('\n').map(Number)].sort();

async function start(): Promise<Gateway> {
  return startGateway({ distDir, ports: [port, statusPort], prefix });
}

beforeAll(async () => {
  // the commands compile gateway.yaml (to find the status listener): ${ADMIN_TOKEN} must resolve
  process.env.ADMIN_TOKEN = TOKEN;
  a = await startEchoUpstream({ id: 'a' });
  b = await startEchoUpstream({ id: 'b' });
  [port, statusPort] = await freePorts(2);
  work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-runtime-'));
  prefix = path.join(work, 'prefix');
  distDir = path.join(work, 'dist');
  const configPath = path.join(work, 'gateway.yaml');
  await writeFile(configPath, yaml(port, statusPort, a));
  const { files } = compileOrThrow(configPath, { ADMIN_TOKEN: TOKEN });
  expect(files['njs/health.json']).not.toContain(TOKEN);
  writeBuild(distDir, files);
  execFileSync('mkdir', ['-p', prefix]);
  execFileSync('chmod', ['755', work, prefix]);
  gw = await start();
});

afterAll(async () => {
  delete process.env.ADMIN_TOKEN;
  await gw?.stop();
  await stopAllGateways();
  await closeAll([a, b]);
  await rm(work, { recursive: true, force: true });
});

describe('runtime servers (admin API)', () => {
  it('refuses calls without the token, with a wrong one, and bad input (the field named, nothing persisted)', async () => {
    await withErrorLog(gw, async () => {
      const none = await admin('GET', '/pool/servers', undefined, null);
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer');
      expect((await admin('GET', '/pool/servers', undefined, 'wrong-token-wrong-token-wrong')).status).toBe(403);
      // from a public listener there is no admin API at all
      expect((await send({ port, path: '/admin/upstreams/pool/servers', headers: { Authorization: `Bearer ${TOKEN}` } })).status).not.toBe(200);
      for (const [body, field] of [
        [{ address: 'backend:80' }, 'address'],
        [{ address: '10.0.0.1:99999' }, 'address'],
        [{ address: '127.0.0.1:9', weight: 0 }, 'weight'],
        [{ address: '127.0.0.1:9', models: ['ok', 'bad model'] }, 'models[1]'],
        [{ address: '127.0.0.1:9', port: 1 }, 'port'],
        ['not json', 'body'],
      ] as const) {
        const r = await admin('POST', '/pool/servers', body);
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect((r.json as { error: { field: string } }).error.field).toBe(field);
      }
      expect((await admin('POST', '/pool/servers', { address: a.address })).status).toBe(409);
      expect((await admin('GET', '/nope/servers')).status).toBe(404);
      expect(existsSync(path.join(prefix, 'state/runtime.json'))).toBe(false);
      const list = await admin('GET', '/pool/servers');
      expect(list.status).toBe(200);
      expect((list.json as { servers: unknown[] }).servers).toEqual([{ address: a.address, weight: 1, state: 'up', runtime: false, models: null }]);
    });
  });

  it('a server added under load takes traffic with no reload and no failed request; it stays after a reload and a restart', async () => {
    await withErrorLog(gw, async () => {
      const before = pids(gw.pid);
      let stop = false;
      const failures: number[] = [];
      const load = (async () => {
        while (!stop) {
          const r = await send({ port, path: '/api/x' });
          if (r.status !== 200) failures.push(r.status);
        }
      })();
      await sleep(200);
      const added = await admin('POST', '/pool/servers', { address: b.address, weight: 1 });
      expect(added.status).toBe(201);
      // the next requests (the flag file is seen within open_file_cache_valid, 1 s)
      await waitUntil(() => b.hits > 5, 3000, 'traffic to the runtime server');
      stop = true;
      await load;
      expect(failures).toEqual([]);
      expect(pids(gw.pid)).toEqual(before);
      const saved = JSON.parse(await readFile(path.join(prefix, 'state/runtime.json'), 'utf8'));
      expect(saved.upstreams.pool[0]).toMatchObject({ address: b.address, weight: 1, state: 'active' });

      // status: the runtime server, flagged; `gatewayctl status` reports it as drift
      const st = await send({ port: statusPort, path: '/admin/status' });
      const peers = (st.json as { upstreams: { peers: { address: string; runtime: boolean; state: string }[] }[] }).upstreams[0].peers;
      expect(peers.map((p) => [p.address, p.runtime, p.state])).toEqual([
        [a.address, false, 'up'],
        [b.address, true, 'up'],
      ]);
      const out = await capture(() => statusCommand({ config: path.join(work, 'gateway.yaml') }));
      expect(out.stdout).toContain(`upstream pool: server ${b.address} running, not in gateway.yaml`);

      await gw.reload();
      b.resetHits();
      for (let i = 0; i < 20; i++) expect((await send({ port, path: '/api/x' })).status).toBe(200);
      expect(b.hits).toBeGreaterThan(0);

      // restart on the same prefix: restored from state/runtime.json by the first 1 s run
      await gw.stop();
      gw = await start();
      b.resetHits();
      await sleep(2200);
      for (let i = 0; i < 20; i++) expect((await send({ port, path: '/api/x' })).status).toBe(200);
      expect(b.hits).toBeGreaterThan(0);
      expect(gw.errorLog()).toMatch(/upstream pool: 1 runtime server\(s\) restored/);
    });
  }, 30_000);

  it('gatewayctl servers: drain stops new requests, remove takes it away; a configured server cannot be removed', async () => {
    await withErrorLog(gw, async () => {
      process.env.GATEWAY_ADMIN_TOKEN = TOKEN;
      try {
        const cfg = path.join(work, 'gateway.yaml');
        const list = await capture(() => serversCommand('list', { config: cfg, upstream: 'pool' }));
        expect(list.code).toBe(0);
        expect(list.stdout).toMatch(new RegExp(`${b.address.replace(/\./g, '\\.')}\\s+1\\s+up\\s+runtime`));
        expect((await capture(() => serversCommand('drain', { config: cfg, upstream: 'pool', address: b.address }))).code).toBe(0);
        await sleep(100);
        b.resetHits();
        for (let i = 0; i < 10; i++) expect((await send({ port, path: '/api/x' })).status).toBe(200);
        expect(b.hits).toBe(0);
        const conf = await capture(() => serversCommand('remove', { config: cfg, upstream: 'pool', address: a.address }));
        expect(conf.code).toBe(1);
        expect(conf.stderr).toContain('409: address: ');
        expect((await capture(() => serversCommand('remove', { config: cfg, upstream: 'pool', address: b.address }))).code).toBe(0);
        const after = (await admin('GET', '/pool/servers')).json as { servers: { address: string }[] };
        expect(after.servers.map((s) => s.address)).toEqual([a.address]);
        // nothing left at runtime: nginx's own balancer again (the flag file goes)
        await waitUntil(() => !existsSync(path.join(prefix, 'state/steer-pool')), 2500, 'the flag file to go');
      } finally {
        delete process.env.GATEWAY_ADMIN_TOKEN;
      }
    });
  });

  it('a runtime server is health-checked: killed, it is taken out and no request fails after detection', async () => {
    await withErrorLog(gw, async () => {
      const c = await startEchoUpstream({ id: 'c' });
      try {
        expect((await admin('POST', '/pool/servers', { address: c.address })).status).toBe(201);
        await waitUntil(() => c.requests.some((r) => r.path === '/healthz'), 3000, 'a probe of the runtime server');
        for (let i = 0; i < 20; i++) expect((await send({ port, path: '/api/x' })).status).toBe(200);
        expect(c.requests.some((r) => r.path === '/api/x')).toBe(true);
        await c.close();
        await waitUntil(() => /upstream pool server 127\.0\.0\.1:\d+ \(runtime\): down/.test(gw.errorLog()), 4000, 'the runtime server to be taken out');
        const failures: number[] = [];
        for (let i = 0; i < 30; i++) {
          const r = await send({ port, path: '/api/x' });
          if (r.status !== 200) failures.push(r.status);
        }
        expect(failures).toEqual([]);
        const st = (await send({ port: statusPort, path: '/admin/status' })).json as { upstreams: { peers: { address: string; state: string; runtime: boolean }[] }[] };
        expect(st.upstreams[0].peers.find((p) => p.address === c.address)).toMatchObject({ state: 'down', runtime: true });
      } finally {
        await c.close().catch(() => undefined);
        await admin('DELETE', `/pool/servers/${c.address}`);
      }
    });
  });

  it('a runtime server has a breaker too: its failures open it and it is skipped', async () => {
    await withErrorLog(gw, async () => {
      const { startFixedStatusUpstream } = await import('../support/upstreams.ts');
      const failing = await startFixedStatusUpstream('failing', 502);
      try {
        expect((await admin('POST', '/pool/servers', { address: failing.address })).status).toBe(201);
        // round robin over a and the failing one: its 502s reach the client until the breaker opens
        for (let i = 0; i < 12 && !/\(runtime\): open \(3 failures/.test(gw.errorLog()); i++) await send({ port, path: '/api/x' });
        await waitUntil(() => /upstream pool server 127\.0\.0\.1:\d+ \(runtime\): open \(3 failures within 10s\)/.test(gw.errorLog()), 2000, 'the runtime breaker to open');
        const hits = failing.hits;
        for (let i = 0; i < 10; i++) expect((await send({ port, path: '/api/x' })).status).toBe(200);
        expect(failing.hits).toBe(hits);
        const st = (await send({ port: statusPort, path: '/admin/status' })).json as { upstreams: { peers: { address: string; state: string; breaker: { state: string } | null }[] }[] };
        const peer = st.upstreams[0].peers.find((p) => p.address === failing.address)!;
        expect(peer.breaker!.state).toBe('open');
        expect(['open', 'down']).toContain(peer.state); // its probes (/healthz answers 502 too) may have taken it out as well
      } finally {
        await admin('DELETE', `/pool/servers/${failing.address}`);
        await failing.close();
      }
    });
  });
});
