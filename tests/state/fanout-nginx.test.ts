// Runtime changes fanned out to every replica: two gateway instances on loopback built from one
// gateway.yaml and keys.yaml. One `gatewayctl keys … --live --endpoint a --endpoint b` and one
// `gatewayctl servers add … --endpoint a --endpoint b` change both (no reload); a replica that
// misses a change is reported as drift by `gatewayctl keys live` and `gatewayctl servers list`
// over the same replicas, and an unreachable replica makes the command fail naming it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, loadKeys, saveKeys, type KeyFile } from '../../src/keys/store.ts';
import { run as keysCommand } from '../../src/commands/keys.ts';
import { run as serversCommand } from '../../src/commands/servers.ts';
import { compileOrThrow } from '../support/gateway.ts';
import { startGateway, stopAllGateways, withErrorLog, type Gateway } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send } from '../support/http.ts';
import { capture } from '../support/capture.ts';
import { closeAll, startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { writeBuild } from '../../src/build/write.ts';

const TOKEN = 'test-admin-token-0123456789abcdef';

const yaml = (port: number, status: number, a: EchoUpstream) => `
version: 1
global:
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - { name: public, address: 127.0.0.1, port: ${port} }
upstreams:
  pool:
    servers: ["${a.address}"]
    circuit_breaker: { failures: 3 }
admin_api:
  token: \${ADMIN_TOKEN}
auth:
  api_keys: { file: keys.yaml }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: pool, auth: api_key }
`;

interface Replica {
  gw: Gateway;
  port: number;
  status: number;
  endpoint: string;
}

let up: EchoUpstream;
let extra: EchoUpstream;
let work: string;
let file: string;
let storeKey: string;
let bobKey: string;
const replicas: Replica[] = [];
let dead: string;

const status = async (r: Replica, key: string) => (await send({ port: r.port, path: '/api/x', headers: { 'X-API-Key': key } })).status;
const endpoints = () => replicas.map((r) => r.endpoint);

beforeAll(async () => {
  process.env.ADMIN_TOKEN = TOKEN;
  process.env.GATEWAY_ADMIN_TOKEN = TOKEN;
  up = await startEchoUpstream({ id: 'up' });
  extra = await startEchoUpstream({ id: 'extra' });
  work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-fanout-'));
  file = path.join(work, 'keys.yaml');
  const store: KeyFile = { version: 1, keys: [] };
  storeKey = createKey(store, { name: 'alice' }, new Date()).key;
  await saveKeys(file, store);
  const [p1, s1, p2, s2, d] = await freePorts(5);
  dead = `127.0.0.1:${d}`;
  for (const [port, st] of [
    [p1, s1],
    [p2, s2],
  ] as const) {
    // one gateway.yaml per instance only because both listen on this one machine
    const dir = path.join(work, `gw-${port}`);
    const configPath = path.join(work, `gateway-${port}.yaml`);
    await writeFile(configPath, yaml(port, st, up));
    writeBuild(dir, compileOrThrow(configPath, { ADMIN_TOKEN: TOKEN }).files);
    replicas.push({ gw: await startGateway({ distDir: dir, ports: [port, st] }), port, status: st, endpoint: `127.0.0.1:${st}` });
  }
});

afterAll(async () => {
  delete process.env.ADMIN_TOKEN;
  delete process.env.GATEWAY_ADMIN_TOKEN;
  for (const r of replicas) await r.gw.stop();
  await stopAllGateways();
  await closeAll([up, extra]);
  await rm(work, { recursive: true, force: true });
});

describe('runtime changes on every replica', () => {
  it('gatewayctl keys --live with two --endpoint: created and revoked on both at once', async () => {
    await withErrorLog(replicas[0]!.gw, async () => {
      const out: string[] = [];
      const err: string[] = [];
      const o = { file, live: true, endpoint: endpoints(), stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s) };
      expect(await keysCommand('create', { ...o, name: 'bob' }), err.join('')).toBe(0);
      const bob = out[0]!.trim();
      bobKey = bob;
      for (const e of endpoints()) expect(err.join('')).toContain(`${e}: create `);
      for (const r of replicas) expect(await status(r, bob)).toBe(200);
      // warm the routes' open_file_cache with the flag file's absence (their upstream has a
      // breaker: a steered route caches it for 1 s), then revoke: refused when the call returns
      for (const r of replicas) for (let i = 0; i < 5; i++) expect(await status(r, storeKey)).toBe(200);
      const t0 = Date.now();
      expect(await keysCommand('revoke', { ...o, target: 'alice' })).toBe(0);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(2000); // the answer waited for those caches
      for (const r of replicas) for (let i = 0; i < 5; i++) expect(await status(r, storeKey)).toBe(401);
      for (const r of replicas) expect(await status(r, bob)).toBe(200);
      // every replica agrees: no drift, and each live entry matches keys.yaml
      out.length = 0;
      err.length = 0;
      expect(await keysCommand('live', { file, endpoint: endpoints(), stdout: (s) => out.push(s), stderr: (s) => err.push(s) }), err.join('')).toBe(0);
      expect(out.join('')).toContain('bob');
    });
  });

  it('a replica that misses a key change is reported as drift; an unreachable one fails the command', async () => {
    // a key created on the first replica only (its admin API directly)
    const only = await send({
      port: replicas[0]!.status,
      method: 'POST',
      path: '/admin/keys',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'carol' }),
    });
    expect(only.status).toBe(201);
    const carol = only.json as { id: string; key: string };
    expect(await status(replicas[0]!, carol.key)).toBe(200);
    expect(await status(replicas[1]!, carol.key)).toBe(401);
    const err: string[] = [];
    expect(await keysCommand('live', { file, endpoint: endpoints(), stdout: () => {}, stderr: (s) => err.push(s) })).toBe(1);
    const text = err.join('');
    expect(text).toContain(`drift: ${replicas[1]!.endpoint} lacks ${carol.id} active (on ${replicas[0]!.endpoint})`);
    // and carol is not in keys.yaml: the next build would not carry her
    expect(text).toContain(`differs from the store: ${carol.id} (active live, absent in ${file})`);

    // an unreachable replica: named, exit 1; keys.yaml and the reachable replica have the key
    const err2: string[] = [];
    const out2: string[] = [];
    expect(await keysCommand('create', { file, live: true, name: 'dave', endpoint: [replicas[0]!.endpoint, dead], stdout: (s) => out2.push(s), stderr: (s) => err2.push(s) })).toBe(1);
    expect(err2.join('')).toContain(`${dead}: unreachable`);
    expect(err2.join('')).toContain('1 of 2 replicas did not take the change');
    const dave = out2[0]!.trim();
    expect(await status(replicas[0]!, dave)).toBe(200);
    expect(await status(replicas[1]!, dave)).toBe(401);
    expect((await loadKeys(file)).keys.some((k) => k.name === 'dave')).toBe(true);

    // keys sync: the replica that missed dave gets him from keys.yaml; nothing else changes
    const err3: string[] = [];
    expect(await keysCommand('sync', { file, endpoint: endpoints(), stdout: () => {}, stderr: (s) => err3.push(s) }), err3.join('')).toBe(0);
    expect(err3.join('')).toContain(`${replicas[1]!.endpoint}: added `);
    expect(err3.join('')).not.toContain(`${replicas[0]!.endpoint}: added `);
    for (const r of replicas) expect(await status(r, dave)).toBe(200);
    for (const r of replicas) expect(await status(r, storeKey)).toBe(401);
  });

  it('gatewayctl servers add with two --endpoint: both replicas route to it; a replica without it is drift', async () => {
    const base = { config: path.join(work, 'unused.yaml'), upstream: 'pool' };
    const added = await capture(() => serversCommand('add', { ...base, address: extra.address, endpoint: endpoints() }));
    expect(added.code, added.stderr).toBe(0);
    // no reload: each replica sends some of the next requests to the new server
    for (const r of replicas) {
      extra.resetHits();
      const deadline = Date.now() + 4000;
      while (extra.hits === 0 && Date.now() < deadline) expect(await status(r, bobKey)).toBe(200);
      expect(extra.hits, `traffic from ${r.endpoint} to the runtime server`).toBeGreaterThan(0);
    }
    const list = await capture(() => serversCommand('list', { ...base, endpoint: endpoints() }));
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split(extra.address).length - 1).toBe(2);
    expect(list.stderr).not.toContain('drift');

    // removed on the second replica only: the list over both reports it
    const removed = await capture(() => serversCommand('remove', { ...base, address: extra.address, endpoint: [replicas[1]!.endpoint] }));
    expect(removed.code, removed.stderr).toBe(0);
    const drift = await capture(() => serversCommand('list', { ...base, endpoint: endpoints() }));
    expect(drift.code).toBe(1);
    expect(drift.stderr).toContain(`drift: upstream pool: ${replicas[1]!.endpoint} lacks ${extra.address} (weight 1, runtime) (on ${replicas[0]!.endpoint})`);
  });
});
