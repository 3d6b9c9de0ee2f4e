// API keys nginx checks without njs (the native lane, src/features/auth/render.ts
// nativeKeyMaps): a key carrying its id is looked up by id, its MD5 compared by secure_link, and
// its identity taken from maps. Real nginx + njs, built from gateway.yaml.
//
// Which lane decided is made observable without touching the build: a record can hold a
// SHA-256 that is not its key's (only the native lane accepts that key) or an MD5 that is not
// (only njs accepts it). Every refusal still comes from njs, with its reason.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, hashKey, md5Key, NATIVE_KEY_RE, renderKeyMap, revokeKey, rotateKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { writeFileSync } from 'node:fs';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { request, type FetchReply } from '../support/http.ts';

let project: Project;
let upstream: EchoUpstream;
let port: number;
const keys: Record<string, string> = {};

const url = (p: string) => `http://127.0.0.1:${port}${p}`;
const get = (p: string, headers: Record<string, string> = {}) => request(url(p), headers);

function gatewayYaml(upstreamAddr: string): string {
  return `version: 1
global:
  status: false
listeners:
  - name: main
    port: ${port}
    address: 127.0.0.1
upstreams:
  app:
    servers: [${upstreamAddr}]
limits:
  rate:
    free: { key: client_id, tier: free, rate: 1r/m }
auth:
  api_keys: { file: keys.yaml }
routes:
  - name: key
    match: { prefix: /key/ }
    upstream: app
    auth: api_key
    rate_limits: [free]
  - name: admin
    match: { prefix: /admin/ }
    upstream: app
    auth: { methods: [api_key], roles: [admin], key_header: X-Admin-Key }
  - name: get-only
    match: { prefix: /get-only/, methods: [GET] }
    upstream: app
    auth: api_key
  - name: public
    match: { prefix: / }
    upstream: app
`;
}

function expect401(r: FetchReply, reason: string) {
  expect(r.status, r.text).toBe(401);
  expect(r.json.error).toMatchObject({ status: 401, reason });
}

const clientOf = async (p: string, h: Record<string, string>) => {
  const r = await get(p, h);
  expect(r.status, r.text).toBe(200);
  return { client: r.json.headers['x-gateway-client'], role: r.json.headers['x-gateway-role'], tier: r.json.headers['x-gateway-tier'] };
};

let build: Date;

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'app' });
  port = await freePort();
  const store: KeyFile = { version: 1, keys: [] };
  build = new Date();
  const minuteAgo = new Date(build.getTime() - 60_000);
  keys.alice = createKey(store, { name: 'alice', role: 'admin', tier: 'pro' }, minuteAgo).key;
  keys.bob = createKey(store, { name: 'bob', tier: 'free' }, minuteAgo).key;
  // only nginx can accept this one: its record's SHA-256 is another string's
  keys.nina = createKey(store, { name: 'nina', role: 'ops' }, minuteAgo).key;
  store.keys.find((k) => k.name === 'nina')!.hash = hashKey('not nina’s key');
  // only njs can accept this one: its record's MD5 is another string's
  keys.jack = createKey(store, { name: 'jack' }, minuteAgo).key;
  store.keys.find((k) => k.name === 'jack')!.md5 = md5Key('not jack’s key');
  // a key without an id (made before keys carried one): njs, as always
  keys.olga = 'gw_live_' + Buffer.alloc(32, 7).toString('base64url');
  store.keys.push({ id: 'key_0123456789ab', name: 'olga', hash: hashKey(keys.olga), md5: null, role: '', tier: 'free', created: minuteAgo.toISOString(), expires: null, revoked: null, replacedBy: null });
  // revoked: not in the native maps, refused by njs as unknown
  keys.carl = createKey(store, { name: 'carl' }, minuteAgo).key;
  revokeKey(store, 'carl', minuteAgo);
  // expires 4 s after the build: secure_link refuses it by itself once that time has passed
  keys.eve = createKey(store, { name: 'eve', expires: new Date(build.getTime() + 4000) }, minuteAgo).key;
  // rotated with a grace period: old and new key both work until it ends
  keys.rita = createKey(store, { name: 'rita' }, minuteAgo).key;
  const rotated = rotateKey(store, 'rita', minuteAgo, new Date(build.getTime() + 3600_000));
  keys.ritaNew = rotated.key;
  project = await startProject({ 'gateway.yaml': gatewayYaml(upstream.address), 'keys.yaml': serializeKeys(store) }, [port], { now: build });
});

afterAll(async () => {
  await project?.stop();
  await upstream?.close();
});

describe('API keys nginx checks itself', () => {
  it('keys carry their id and the build writes only digests to the key map', () => {
    for (const k of ['alice', 'bob', 'nina', 'jack', 'carl', 'eve', 'rita', 'ritaNew']) expect(keys[k]).toMatch(NATIVE_KEY_RE);
    const map = readFileSync(path.join(project.dir, 'dist', 'conf.d', 'keys.map'), 'utf8');
    for (const k of Object.values(keys)) expect(map).not.toContain(k.slice(8));
    // alice's id maps to her key's MD5, her client, role and tier
    const id = NATIVE_KEY_RE.exec(keys.alice)![1];
    expect(map).toContain(`"${id}" "${md5Key(keys.alice)}";`);
    expect(map).toContain(`"${id}" "alice";`);
    expect(map).toContain(`"${id}" "admin";`);
    // revoked: no entry; olga (no id) has none either
    expect(map).not.toContain(NATIVE_KEY_RE.exec(keys.carl)![1]);
    expect(map).not.toContain('0123456789ab');
  });

  it('a key only nginx can check is accepted with its identity: the njs handler was never asked', async () => {
    expect(await clientOf('/key/a', { 'X-API-Key': keys.nina })).toEqual({ client: 'nina', role: 'ops', tier: undefined });
    expect(await clientOf('/key/a', { Authorization: `Bearer ${keys.nina}` })).toEqual({ client: 'nina', role: 'ops', tier: undefined });
  });

  it('a key nginx cannot check goes to njs, which accepts it by its SHA-256', async () => {
    expect(await clientOf('/key/a', { 'X-API-Key': keys.jack })).toEqual({ client: 'jack', role: undefined, tier: undefined });
    expect(await clientOf('/key/a', { 'X-API-Key': keys.olga })).toEqual({ client: 'olga', role: undefined, tier: 'free' });
  });

  it('identity, roles and tier limits come from the native maps', async () => {
    expect(await clientOf('/admin/x', { 'X-Admin-Key': keys.alice })).toEqual({ client: 'alice', role: 'admin', tier: 'pro' });
    const denied = await get('/admin/x', { 'X-Admin-Key': keys.nina });
    expect(denied.status, denied.text).toBe(403);
    expect(denied.json.error.reason).toBe('role_denied');
    // the route's own key header: a key in another header is no key for it
    expect401(await get('/admin/x', { 'X-API-Key': keys.alice }), 'missing_key');
    // bob is tier free (1r/m keyed by the client): the second request is limited
    expect((await get('/key/t1', { 'X-API-Key': keys.bob })).status).toBe(200);
    expect((await get('/key/t2', { 'X-API-Key': keys.bob })).status).toBe(429);
    // alice (pro) is not counted by the free zone
    for (let i = 0; i < 3; i++) expect((await get('/key/t3', { 'X-API-Key': keys.alice })).status).toBe(200);
  });

  it('a forged key with a real id, another secret or another length is refused by njs with its reason', async () => {
    const id = NATIVE_KEY_RE.exec(keys.alice)![1];
    expect401(await get('/key/', { 'X-API-Key': `gw_live_${id}${'A'.repeat(43)}` }), 'unknown_key');
    expect401(await get('/key/', { 'X-API-Key': keys.alice.slice(0, -1) + (keys.alice.endsWith('A') ? 'B' : 'A') }), 'unknown_key');
    expect401(await get('/key/', { 'X-API-Key': `${keys.alice}A` }), 'unknown_key');
    expect401(await get('/key/', { 'X-API-Key': keys.alice.toUpperCase() }), 'unknown_key');
    expect401(await get('/key/', { 'X-API-Key': keys.carl }), 'unknown_key');
    expect401(await get('/key/'), 'missing_key');
  });

  it('a rotated key works with the new one until its grace period ends', async () => {
    expect((await clientOf('/key/r', { 'X-API-Key': keys.rita })).client).toBe('rita');
    expect((await clientOf('/key/r', { 'X-API-Key': keys.ritaNew })).client).toBe('rita');
  });

  it('a request refused before the key check logs no identity, an accepted one its client', async () => {
    const stamp = Date.now();
    expect((await request(url(`/get-only/p-${stamp}`), { 'X-API-Key': keys.alice }, { method: 'POST', body: '{}' })).status).toBe(405);
    expect((await get(`/get-only/g-${stamp}`, { 'X-API-Key': keys.alice })).status).toBe(200);
    let access: Record<string, unknown>[] = [];
    for (let i = 0; i < 40 && access.filter((l) => String(l.uri).endsWith(`-${stamp}`)).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      access = project.gw.accessLog().trim().split('\n').map((l) => JSON.parse(l));
    }
    expect(access.find((l) => l.uri === `/get-only/p-${stamp}`)).toMatchObject({ status: 405, auth: '', client: '' });
    expect(access.find((l) => l.uri === `/get-only/g-${stamp}`)).toMatchObject({ status: 200, auth: 'ok', client: 'alice' });
  });

  it('a key past its expiry is refused by secure_link and named expired by njs, without a rebuild', async () => {
    expect((await clientOf('/key/e', { 'X-API-Key': keys.eve })).client).toBe('eve');
    const wait = build.getTime() + 4000 + 1100 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    expect401(await get('/key/e', { 'X-API-Key': keys.eve }), 'expired_key');
  });
});

describe('a store of keys without an id', () => {
  let old: Project;
  let oldPort: number;
  const store: KeyFile = { version: 1, keys: [] };
  const legacy = 'gw_live_' + Buffer.alloc(32, 9).toString('base64url');

  beforeAll(async () => {
    oldPort = await freePort();
    store.keys.push({ id: 'key_00000000abcd', name: 'legacy', hash: hashKey(legacy), md5: null, role: '', tier: '', created: new Date(Date.now() - 60_000).toISOString(), expires: null, revoked: null, replacedBy: null });
    old = await startProject({ 'gateway.yaml': gatewayYaml(upstream.address).replace(`port: ${port}`, `port: ${oldPort}`), 'keys.yaml': serializeKeys(store) }, [oldPort]);
  });
  afterAll(async () => {
    await old?.stop();
  });

  it('keeps its one njs call: the routes get no secure_link, the key map include still names the native maps', async () => {
    expect(old.files['conf.d/40-servers.conf']).not.toContain('secure_link');
    expect(old.files['conf.d/keys.map']).toContain('map $gw_key_native_id $gw_key_native_check {');
    const r = await request(`http://127.0.0.1:${oldPort}/key/a`, { 'X-API-Key': legacy });
    expect(r.status, r.text).toBe(200);
    expect(r.json.headers['x-gateway-client']).toBe('legacy');
  });

  it('a key of the new form brought in by `keys map --out` and a reload works (through njs until the next build)', async () => {
    const fresh = createKey(store, { name: 'fresh', tier: 'free' }, new Date()).key;
    // what `gatewayctl keys map --out dist/conf.d/keys.map` writes
    writeFileSync(path.join(old.distDir, 'conf.d', 'keys.map'), renderKeyMap(store.keys, new Date(), undefined, { native: true }), { mode: 0o600 });
    await old.gw.reload();
    // a kept-alive connection to an old worker may be closed under the first request: once more
    const afterReload = async (p: string, key: string) => {
      try {
        return await request(`http://127.0.0.1:${oldPort}${p}`, { 'X-API-Key': key });
      } catch {
        return request(`http://127.0.0.1:${oldPort}${p}`, { 'X-API-Key': key });
      }
    };
    const r = await afterReload('/key/b', fresh);
    expect(r.status, r.text).toBe(200);
    expect(r.json.headers['x-gateway-client']).toBe('fresh');
    expect((await afterReload('/key/c', legacy)).status).toBe(200);
  });
});
