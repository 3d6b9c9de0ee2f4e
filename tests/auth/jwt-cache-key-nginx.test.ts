// `auth.jwt_cache.key`: the verified-token cache keyed by the Authorization header itself (the
// default) or by its SHA-256 (`key: sha256`), through real nginx. With sha256 a token seen
// before is still answered from the cache on both JWT paths (HS256 in one js_set, ES256 through
// $gw_jwt_cached), and no bearer token is kept in shared memory: the shared zones of a worker
// are read from /proc and searched for the token, with the default mode as the control that
// the search finds one where one is kept.
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workerPid } from '../../src/bench/cpu.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { request, waitUntil } from '../support/http.ts';

const SECRET = 'hs256-secret-for-the-cache-key-tests-0123456789';
let upstream: EchoUpstream;
let ec: CryptoKeyPair;
const projects: Record<'header' | 'sha256', { project: Project; port: number }> = {} as never;

async function token(alg: 'HS256' | 'ES256', sub: string) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ role: 'reader', tier: 'free' })
    .setProtectedHeader({ alg, ...(alg === 'ES256' ? { kid: 'ec1' } : {}) })
    .setSubject(sub)
    .setIssuedAt(now - 5)
    .setExpirationTime(now + 300)
    .sign(alg === 'HS256' ? new TextEncoder().encode(SECRET) : ec.privateKey);
}

function gatewayYaml(port: number, key: 'header' | 'sha256'): string {
  return `version: 1
global:
  status: false
listeners:
  - { name: main, port: ${port}, address: 127.0.0.1 }
upstreams:
  app: { servers: [${upstream.address}] }
auth:
  jwt_cache: { size: 256k, ttl: 5m${key === 'sha256' ? ', key: sha256' : ''} }
  jwt:
    es: { algorithms: [ES256], jwks_file: jwks.json, role_claim: role }
    hs: { algorithms: [HS256], secret_env: GW_TEST_JWT_SECRET, role_claim: role }
routes:
  - { name: es, match: { prefix: /es/ }, upstream: app, auth: { methods: [jwt], jwt_provider: es } }
  - { name: hs, match: { prefix: /hs/ }, upstream: app, auth: { methods: [jwt], jwt_provider: hs } }
`;
}

/** The worker's shared anonymous mappings (nginx's shared zones), searched for `needle`. */
function sharedMemoryHolds(masterPid: number, needle: string): boolean {
  const pid = workerPid(masterPid);
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter((l) => /^\S+ rw-s /.test(l) && (/\/dev\/zero|\(deleted\)|SYSV/.test(l) || l.trim().split(/\s+/).length === 5));
  expect(maps.length, 'the worker has shared mappings').toBeGreaterThan(0);
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (const l of maps) {
      const [from, to] = l.split(' ')[0].split('-').map((x) => BigInt(`0x${x}`));
      const buf = Buffer.alloc(Number(to - from));
      readSync(fd, buf, 0, buf.length, from);
      if (buf.includes(needle)) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

const entries = (p: Project, uri: string) =>
  p.gw
    .accessLog()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((l) => l.uri === uri);

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'app' });
  ec = await generateKeyPair('ES256', { extractable: true });
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'ec1', alg: 'ES256', use: 'sig' }] });
  for (const key of ['header', 'sha256'] as const) {
    const port = await freePort();
    const project = await startProject({ 'gateway.yaml': gatewayYaml(port, key), 'jwks.json': jwks }, [port], { env: { GW_TEST_JWT_SECRET: SECRET } });
    projects[key] = { project, port };
  }
});

afterAll(async () => {
  for (const p of Object.values(projects)) await p.project.stop();
  await upstream?.close();
});

describe('jwt_cache.key: sha256', () => {
  it('the build marks every provider hashed and gives the fast path their generations under $gw_jwt_fast_sha256', () => {
    const { project } = projects.sha256;
    const preload = JSON.parse(project.files['njs/auth.json']);
    for (const p of ['es', 'hs']) expect(preload.jwt[p].cacheHashed, p).toBe(true);
    const [headerKeyed, hashed] = project.files['conf.d/jwt-fast.map'].split('map $gw_jwt_provider $gw_jwt_fast_sha256 {');
    expect(headerKeyed).not.toMatch(/^\s+"(es|hs)" /m);
    for (const p of ['es', 'hs']) expect(hashed).toContain(`"${p}" "${preload.jwt[p].cacheGen}";`);
    // the key mode is part of the generation: switching it finds none of the old entries
    const header = JSON.parse(projects.header.project.files['njs/auth.json']);
    expect(header.jwt.hs.cacheHashed).toBeUndefined();
    expect(header.jwt.hs.cacheGen).not.toBe(preload.jwt.hs.cacheGen);
    expect(projects.header.project.files['conf.d/jwt-fast.map']).toMatch(/^\s+"hs" /m);
    expect(projects.header.project.files['conf.d/jwt-fast.map']).not.toContain('gw_jwt_fast_sha256');
  });

  for (const alg of ['HS256', 'ES256'] as const) {
    it(`${alg}: a token seen before is answered from the cache with the same identity; a tampered one is refused`, async () => {
      const { project, port } = projects.sha256;
      const p = alg === 'HS256' ? 'hs' : 'es';
      const t = await token(alg, `hashed-${alg}`);
      const first = await request(`http://127.0.0.1:${port}/${p}/a`, { Authorization: `Bearer ${t}` });
      const second = await request(`http://127.0.0.1:${port}/${p}/b`, { Authorization: `Bearer ${t}` });
      expect(first.status, first.text).toBe(200);
      expect(second.status, second.text).toBe(200);
      for (const h of ['x-gateway-client', 'x-gateway-role', 'x-gateway-claims']) expect(second.json.headers[h], h).toBe(first.json.headers[h]);
      await waitUntil(() => entries(project, `/${p}/b`).length > 0, 5000, 'access log');
      expect(entries(project, `/${p}/a`)[0]).toMatchObject({ status: 200, jwt_cache: 'miss', client: `hashed-${alg}` });
      expect(entries(project, `/${p}/b`)[0]).toMatchObject({ status: 200, jwt_cache: 'hit', client: `hashed-${alg}` });
      const [h, pl] = t.split('.');
      const forged = await request(`http://127.0.0.1:${port}/${p}/c`, { Authorization: `Bearer ${h}.${pl}.AAAA` });
      expect(forged.status, forged.text).toBe(401);
    });
  }

  it('shared memory holds the cached token with the default key, and no token with sha256', async () => {
    for (const key of ['header', 'sha256'] as const) {
      const { project, port } = projects[key];
      const t = await token('HS256', `memory-${key}`);
      for (const n of [1, 2]) {
        const r = await request(`http://127.0.0.1:${port}/hs/m${n}`, { Authorization: `Bearer ${t}` });
        expect(r.status, r.text).toBe(200);
      }
      await waitUntil(() => entries(project, '/hs/m2').length > 0, 5000, 'access log');
      expect(entries(project, '/hs/m2')[0].jwt_cache).toBe('hit');
      // the signature segment: unique to this token, in no other place of the worker's shared memory
      expect(sharedMemoryHolds(project.gw.pid, t.split('.')[2]), key).toBe(key === 'header');
    }
  });
});
