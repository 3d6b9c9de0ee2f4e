// Runtime API keys through real nginx (auth.api_keys + admin_api): keys created, revoked and
// rotated through /admin/keys on the status listener take effect on the very next request on
// every worker, with no rebuild or reload (master and worker pids unchanged); they survive a
// reload and a restart (state/keys.json); `gatewayctl keys … --live` writes keys.yaml first, so
// a build from the store agrees with the running gateway; the admin API refuses calls without
// the token (401), with a wrong one (403) and bad input (400 naming the field, nothing
// persisted), and never logs or lists a key.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, hashKey, loadKeys, saveKeys, type KeyFile } from '../../src/keys/store.ts';
import { run as keysCommand } from '../../src/commands/keys.ts';
import { compileOrThrow } from '../support/gateway.ts';
import { startGateway, stopAllGateways, withErrorLog, type Gateway } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, sleep } from '../support/http.ts';
import { closeAll, startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { writeBuild } from '../../src/build/write.ts';

const TOKEN = 'test-admin-token-0123456789abcdef';

const yaml = (port: number, status: number, a: EchoUpstream) => `
version: 1
global:
  worker_processes: 2
  status: { listen: "127.0.0.1:${status}" }
listeners:
  - { name: public, address: 127.0.0.1, port: ${port} }
upstreams:
  app: { servers: ["${a.address}"] }
admin_api:
  token: \${ADMIN_TOKEN}
  allow: [10.1.0.0/16]
auth:
  api_keys: { file: keys.yaml }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: app, auth: api_key }
`;

let a: EchoUpstream;
let gw: Gateway;
let port: number;
let statusPort: number;
let work: string;
let prefix: string;
let distDir: string;
let configPath: string;
const keys: Record<string, string> = {};

const admin = (method: string, p: string, body?: unknown, token: string | null = TOKEN) =>
  send({
    port: statusPort,
    method,
    path: `/admin/keys${p}`,
    headers: { 'Content-Type': 'application/json', ...(token === null ? {} : { Authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });

/** Statuses of n requests with the key, each on a new connection (so both workers answer). */
async function statuses(key: string, n = 12): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await send({ port, path: '/api/x', headers: { 'X-API-Key': key, Connection: 'close' } })).status);
  return [...new Set(out)];
}

const pids = (master: number) => [master, ...execFileSync('pgrep', ['-P', String(master)], { encoding: 'utf8' }).trim().split('\n').map(Number)].sort();

function build(): void {
  const { files } = compileOrThrow(configPath, { ADMIN_TOKEN: TOKEN });
  writeBuild(distDir, files);
}

beforeAll(async () => {
  process.env.ADMIN_TOKEN = TOKEN;
  a = await startEchoUpstream({ id: 'a' });
  [port, statusPort] = await freePorts(2);
  work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-livekeys-'));
  prefix = path.join(work, 'prefix');
  distDir = path.join(work, 'dist');
  configPath = path.join(work, 'gateway.yaml');
  const store: KeyFile = { version: 1, keys: [] };
  for (const name of ['alice', 'bob', 'carol', 'dave']) keys[name] = createKey(store, { name, role: 'user' }, new Date()).key;
  await saveKeys(path.join(work, 'keys.yaml'), store);
  await writeFile(configPath, yaml(port, statusPort, a));
  build();
  const conf = await readFile(path.join(distDir, 'conf.d/05-auth.conf'), 'utf8');
  expect(conf).toContain('js_set $gw_apikey_live gateway.apiKeyLive;');
  expect(await readFile(path.join(distDir, 'nginx.conf'), 'utf8')).not.toContain(TOKEN);
  // admin_api.allow: callers besides loopback (e.g. the pod network for --dns on Kubernetes)
  const servers = await readFile(path.join(distDir, 'conf.d/40-servers.conf'), 'utf8');
  expect(servers).toMatch(/location \/admin\/keys \{[^}]*allow ::1;\s*allow 10\.1\.0\.0\/16;\s*deny all;/);
  expect(servers).not.toContain(TOKEN);
  execFileSync('mkdir', ['-p', prefix]);
  execFileSync('chmod', ['755', work, prefix]);
  gw = await startGateway({ distDir, ports: [port, statusPort], prefix });
});

afterAll(async () => {
  delete process.env.ADMIN_TOKEN;
  await gw?.stop();
  await stopAllGateways();
  await closeAll([a]);
  await rm(work, { recursive: true, force: true });
});

describe('runtime API keys (admin API)', () => {
  it('refuses calls without the token, with a wrong one, and bad input (the field named, nothing persisted)', async () => {
    await withErrorLog(gw, async () => {
      const none = await admin('GET', '', undefined, null);
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer');
      expect((await admin('GET', '', undefined, 'wrong-token-wrong-token-wrong')).status).toBe(403);
      expect((await admin('POST', '', { name: 'x' }, 'wrong-token-wrong-token-wrong')).status).toBe(403);
      // from the public listener there is no admin API
      expect((await send({ port, path: '/admin/keys', headers: { Authorization: `Bearer ${TOKEN}` } })).status).not.toBe(200);
      for (const [p, body, field] of [
        ['', { role: 'user' }, 'name'],
        ['', { name: 'bad name' }, 'name'],
        ['', { name: 'x', tier: 'a/b' }, 'tier'],
        ['', { name: 'x', expires: 'tomorrow' }, 'expires'],
        ['', { name: 'x', hash: 'abc' }, 'hash'],
        ['', { name: 'x', key: 'gw_live_x' }, 'key'],
        ['', 'not json', 'body'],
        ['/revoke', {}, 'hash'],
        ['/revoke', { hash: hashKey(keys.alice!), at: -1 }, 'at'],
        ['/rotate', { hash: hashKey(keys.alice!), grace: 1.5 }, 'grace'],
      ] as const) {
        const r = await admin('POST', p, body);
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect((r.json as { error: { field: string } }).error.field).toBe(field);
      }
      expect((await admin('POST', '/revoke', { hash: '0'.repeat(64) })).status).toBe(404);
      expect((await admin('DELETE', '')).status).toBe(405);
      expect(existsSync(path.join(prefix, 'state/keys.json'))).toBe(false);
      expect((await admin('GET', '')).json).toEqual({ keys: [] });
      expect(await statuses(keys.alice!)).toEqual([200]);
    });
  });

  it('a key created live authenticates on the next request, a store key revoked live is refused at once; no reload', async () => {
    await withErrorLog(gw, async () => {
      const before = pids(gw.pid);
      const created = await admin('POST', '', { name: 'erin', tier: 'pro' });
      expect(created.status).toBe(201);
      const c = created.json as { key: string; id: string; hash: string; name: string; tier: string };
      expect(c).toMatchObject({ name: 'erin', tier: 'pro' });
      expect(c.key).toMatch(/^gw_live_[A-Za-z0-9_-]{43}$/);
      expect(c.hash).toBe(hashKey(c.key));
      keys.erin = c.key;
      expect(await statuses(c.key)).toEqual([200]);
      const seen = await send({ port, path: '/api/x', headers: { 'X-API-Key': c.key } });
      expect(seen.status).toBe(200);
      // the live key's identity reaches the upstream as a store key's does
      expect(JSON.stringify(seen.json)).toContain('erin');

      const revoked = await admin('POST', '/revoke', { hash: hashKey(keys.bob!) });
      expect(revoked.status).toBe(200);
      expect(await statuses(keys.bob!)).toEqual([401]);
      expect(await statuses(keys.alice!)).toEqual([200]);
      // a key created live and revoked live
      const gina = (await admin('POST', '', { name: 'gina' })).json as { key: string; hash: string };
      expect(await statuses(gina.key)).toEqual([200]);
      expect((await admin('POST', '/revoke', { hash: gina.hash })).status).toBe(200);
      expect(await statuses(gina.key)).toEqual([401]);
      expect((await admin('POST', '/revoke', { hash: gina.hash })).status).toBe(404);
      keys.gina = gina.key;
      expect(pids(gw.pid)).toEqual(before);

      // listed without any key; never logged
      const list = JSON.stringify((await admin('GET', '')).json);
      expect(list).toContain(c.id);
      expect(list).not.toContain(c.key);
      expect(gw.errorLog()).toContain(`live API key ${c.id} (erin) created`);
      for (const k of Object.values(keys)) expect(gw.errorLog()).not.toContain(k);
      const saved = JSON.parse(await readFile(path.join(prefix, 'state/keys.json'), 'utf8'));
      expect(Object.keys(saved.keys).sort()).toEqual([c.hash, hashKey(keys.bob!), hashKey(keys.gina!)].sort());
      expect(JSON.stringify(saved)).not.toContain(c.key);
      expect(statSync(path.join(prefix, 'state/keys.json')).mode & 0o777).toBe(0o600);
    });
  });

  it('rotate: the new key works at once, the old one until its grace period ends', async () => {
    await withErrorLog(gw, async () => {
      const r = await admin('POST', '/rotate', { hash: hashKey(keys.carol!), grace: 2 });
      expect(r.status).toBe(201);
      const n = r.json as { key: string; name: string };
      expect(n.name).toBe('carol');
      expect(await statuses(n.key)).toEqual([200]);
      expect(await statuses(keys.carol!, 4)).toEqual([200]);
      await sleep(3100);
      expect(await statuses(keys.carol!)).toEqual([401]);
      expect(await statuses(n.key)).toEqual([200]);
      keys.carol2 = n.key;
    });
  }, 15_000);

  it('the live state survives a reload and a restart', async () => {
    await withErrorLog(gw, async () => {
      await gw.reload();
      expect(await statuses(keys.erin!)).toEqual([200]);
      expect(await statuses(keys.bob!)).toEqual([401]);
      await gw.stop();
      gw = await startGateway({ distDir, ports: [port, statusPort], prefix });
      // the first request after the start loads state/keys.json: no window where bob passes
      expect(await statuses(keys.bob!)).toEqual([401]);
      expect(await statuses(keys.erin!)).toEqual([200]);
      expect(await statuses(keys.carol!)).toEqual([401]);
      expect(await statuses(keys.carol2!)).toEqual([200]);
      expect(await statuses(keys.alice!)).toEqual([200]);
      expect(await statuses(keys.gina!)).toEqual([401]);
      expect(gw.errorLog()).toMatch(/live API keys: 5 entries restored/);
    });
  }, 20_000);

  it('gatewayctl keys --live writes keys.yaml and the gateway; a build from the store then agrees', async () => {
    await withErrorLog(gw, async () => {
      process.env.GATEWAY_ADMIN_TOKEN = TOKEN;
      const file = path.join(work, 'keys.yaml');
      const lines: string[] = [];
      const o = { file, live: true, config: configPath, stdout: (s: string) => lines.push(s), stderr: (s: string) => lines.push(s) };
      try {
        const before = pids(gw.pid);
        expect(await keysCommand('create', { ...o, name: 'frank', role: 'user' })).toBe(0);
        const frank = lines[0]!.trim();
        expect(frank).toMatch(/^gw_live_/);
        expect(await statuses(frank)).toEqual([200]);
        expect(await keysCommand('revoke', { ...o, target: 'dave' })).toBe(0);
        expect(await statuses(keys.dave!)).toEqual([401]);
        expect(pids(gw.pid)).toEqual(before);
        expect(lines.join('')).toContain(`127.0.0.1:${statusPort}: create`);
        const store = await loadKeys(file);
        expect(store.keys.find((k) => k.name === 'frank')!.hash).toBe(hashKey(frank));
        expect(store.keys.find((k) => k.name === 'dave')!.revoked).not.toBeNull();

        // the next build carries both changes: frank in the key map, dave marked revoked
        build();
        const map = await readFile(path.join(distDir, 'conf.d/keys.map'), 'utf8');
        expect(map).toContain(`"${hashKey(frank)}" "frank|user||0";`);
        expect(map).toContain(`"${hashKey(keys.dave!)}" "!";`);
        await gw.reload();
        expect(await statuses(frank)).toEqual([200]);
        expect(await statuses(keys.dave!)).toEqual([401]);

        // a key revoked in keys.yaml alone (no --live) is refused after the next build even
        // though it was created live: the store decides for builds
        lines.length = 0;
        expect(await keysCommand('revoke', { file, target: 'frank', stdout: () => {}, stderr: () => {} })).toBe(0);
        expect(await statuses(frank)).toEqual([200]); // not yet: no --live, no build
        build();
        await gw.reload();
        expect(await statuses(frank)).toEqual([401]);
        expect(await statuses(keys.alice!)).toEqual([200]);
      } finally {
        delete process.env.GATEWAY_ADMIN_TOKEN;
      }
    });
  }, 30_000);
});
