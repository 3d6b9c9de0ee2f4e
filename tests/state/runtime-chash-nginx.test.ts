// Runtime servers on a consistent-hash upstream through real nginx: a server added through the
// admin API under load takes traffic with no reload (pids unchanged, no failed request) and
// takes exactly its ketama share: every key lands where `gatewayctl route --url` (the ring
// with the runtime servers) says, the keys that moved all moved to the new server and nothing
// else moved; drained or removed, every key returns to its server from gateway.yaml.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
import { run as routeCommand } from '../../src/commands/route.ts';
import { existsSync } from 'node:fs';

const TOKEN = 'test-admin-token-0123456789abcdef';

const yaml = (port: number, status: number, ups: EchoUpstream[]) => `
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
    balance: consistent_hash
    hash_key: { header: X-User }
    servers: [${ups.map((u) => `"${u.address}"`).join(', ')}]
    circuit_breaker: { failures: 3 }
admin_api:
  token: \${ADMIN_TOKEN}
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: pool
`;

let ups: EchoUpstream[];
let extra: EchoUpstream;
let gw: Gateway;
let port: number;
let statusPort: number;
let work: string;
let prefix: string;
let cfg: string;

const KEYS = Array.from({ length: 120 }, (_, i) => `user-${i}`);

const admin = (method: string, p: string, body?: unknown) =>
  send({
    port: statusPort,
    method,
    path: `/admin/upstreams${p}`,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

const pids = (master: number) => [master, ...execFileSync('pgrep', ['-P', String(master)], { encoding: 'utf8' }).trim().split('\n').map(Number)].sort();

/** The server (address) each key reached through the gateway. */
async function landed(): Promise<Record<string, string>> {
  const byId = new Map([...ups, extra].map((u) => [u.id, u.address]));
  const out: Record<string, string> = {};
  for (const k of KEYS) {
    const r = await send({ port, path: '/api/x', headers: { 'X-User': k } });
    expect(r.status, k).toBe(200);
    out[k] = byId.get((r.json as { id: string }).id)!;
  }
  return out;
}

/** Where `gatewayctl route` puts each key: with --url, the ring with the gateway's runtime servers. */
async function predicted(live: boolean): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const k of KEYS) {
    const res = await capture(() => routeCommand({ config: cfg, key: k, json: true, ...(live ? { url: `http://127.0.0.1:${statusPort}/admin/status` } : {}) }));
    expect(res.code, res.stderr).toBe(0);
    out[k] = (JSON.parse(res.stdout) as { peer: string }).peer;
  }
  return out;
}

beforeAll(async () => {
  process.env.ADMIN_TOKEN = TOKEN;
  ups = await Promise.all(['a', 'b', 'c'].map((id) => startEchoUpstream({ id })));
  extra = await startEchoUpstream({ id: 'rt' });
  [port, statusPort] = await freePorts(2);
  work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-rtchash-'));
  prefix = path.join(work, 'prefix');
  const distDir = path.join(work, 'dist');
  cfg = path.join(work, 'gateway.yaml');
  await writeFile(cfg, yaml(port, statusPort, ups));
  writeBuild(distDir, compileOrThrow(cfg, { ADMIN_TOKEN: TOKEN }).files);
  execFileSync('mkdir', ['-p', prefix]);
  execFileSync('chmod', ['755', work, prefix]);
  gw = await startGateway({ distDir, ports: [port, statusPort], prefix });
});

afterAll(async () => {
  delete process.env.ADMIN_TOKEN;
  await gw?.stop();
  await stopAllGateways();
  await closeAll([...ups, extra]);
  await rm(work, { recursive: true, force: true });
});

describe('runtime servers on a consistent-hash upstream', () => {
  it('a runtime server takes exactly its ketama share (as gatewayctl route --url says), keys move only to it, and back when it is removed', async () => {
    await withErrorLog(gw, async () => {
      // refused: models (one ring places every key, whatever its model)
      const bad = await admin('POST', '/pool/servers', { address: extra.address, models: ['m1'] });
      expect(bad.status).toBe(400);
      expect((bad.json as { error: { field: string } }).error.field).toBe('models');
      const heavy = await admin('POST', '/pool/servers', { address: extra.address, weight: 21 });
      expect(heavy.status).toBe(400);
      expect((heavy.json as { error: { field: string } }).error.field).toBe('weight');

      const before = await landed();
      expect(before).toEqual(await predicted(false));
      expect(new Set(Object.values(before)).size).toBe(3);

      // add it under load: no reload, no failed request
      const pidsBefore = pids(gw.pid);
      let stop = false;
      const failures: number[] = [];
      const load = (async () => {
        for (let n = 0; !stop; n++) {
          const r = await send({ port, path: '/api/x', headers: { 'X-User': KEYS[n % KEYS.length] } });
          if (r.status !== 200) failures.push(r.status);
        }
      })();
      await sleep(200);
      const added = await admin('POST', '/pool/servers', { address: extra.address, weight: 1 });
      expect(added.status).toBe(201);
      await waitUntil(() => extra.hits > 3, 3000, 'traffic to the runtime server');
      await sleep(1200); // every worker sees the flag file (open_file_cache_valid 1 s)
      stop = true;
      await load;
      expect(failures).toEqual([]);
      expect(pids(gw.pid)).toEqual(pidsBefore);

      const withRt = await landed();
      const want = await predicted(true);
      expect(withRt).toEqual(want);
      const moved = KEYS.filter((k) => withRt[k] !== before[k]);
      expect(moved.length).toBeGreaterThan(0);
      for (const k of moved) expect(withRt[k], k).toBe(extra.address); // keys moved only to the new server
      expect(KEYS.filter((k) => withRt[k] === extra.address)).toEqual(moved);

      // drained: its points leave the ring, every key returns (route --url agrees)
      expect((await admin('POST', `/pool/servers/${extra.address}/drain`)).status).toBe(200);
      await sleep(100);
      expect(await landed()).toEqual(before);
      expect(await predicted(true)).toEqual(before);

      // removed: every key stays back, and nginx's own balancer again
      expect((await admin('DELETE', `/pool/servers/${extra.address}`)).status).toBe(200);
      await waitUntil(() => !existsSync(path.join(prefix, 'state/steer-pool')), 2500, 'the flag file to go');
      await sleep(1200);
      expect(await landed()).toEqual(before);
      expect(await predicted(true)).toEqual(before);
    });
  }, 60_000);
});
