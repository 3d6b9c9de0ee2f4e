// Traffic routing through real nginx: a route picks its upstream by header, cookie, query
// argument or JWT claim (first matching rule), else by a weighted split, else its own upstream.
// A 90/10 split over 1,000 requests lands within a few percent; a sticky split keeps each client
// on one side, exactly where `gatewayctl route --route` (src/routing/traffic.ts) predicts.
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { explainTraffic } from '../../src/routing/traffic.ts';
import { freePort } from '../support/ports.ts';
import { closeAll, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';
import { withErrorLog } from '../support/nginx.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { send } from '../support/http.ts';
import { capture } from '../support/capture.ts';
import { run as routeCommand } from '../../src/commands/route.ts';

const SECRET = 'traffic-hs256-secret-0123456789abcdefghij';
let project: Project;
let ups: EchoUpstream[] = [];
let port: number;
let ec: CryptoKeyPair;
let model: NonNullable<ReturnType<typeof compile>['model']>;

const yaml = (a: string[]) => `version: 1
global: { status: false, worker_processes: 1 }
listeners:
  - { name: main, port: ${port}, address: 127.0.0.1 }
upstreams:
  blue: { servers: [${a[0]}] }
  green: { servers: [${a[1]}] }
  canary: { servers: [${a[2]}] }
  acme: { servers: [${a[3]}] }
auth:
  jwt:
    idp: { algorithms: [HS256], secret_env: GW_TRAFFIC_SECRET }
    ext: { algorithms: [ES256], jwks_file: jwks.json }
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: blue
    traffic:
      match:
        - { header: X-Canary, value: "1", upstream: canary }
        - { header: X-Canary, value: green, upstream: green }
        - { cookie: release, value: green, upstream: green }
        - { query: pool, value: canary, upstream: canary }
  - name: split
    match: { prefix: /split/ }
    upstream: blue
    traffic: { split: { green: 10 } }
  - name: sticky
    match: { prefix: /sticky/ }
    upstream: blue
    traffic:
      match: [{ header: X-Canary, value: "1", upstream: canary }]
      split: { green: 30 }
      sticky: { header: X-User }
  - name: ramped
    match: { prefix: /ramped/ }
    upstream: blue
    traffic: { split: {}, sticky: client_ip }
  - name: tenants
    match: { prefix: /tenant/ }
    upstream: blue
    auth: { methods: [jwt], jwt_provider: idp }
    traffic:
      match: [{ jwt_claim: tenant, value: acme, upstream: acme }]
  - name: tenants-es
    match: { prefix: /tenant-es/ }
    upstream: blue
    auth: { methods: [jwt], jwt_provider: ext }
    traffic:
      match: [{ jwt_claim: tenant, value: acme, upstream: acme }]
`;

const idOf = (name: string) => ({ blue: ups[0].id, green: ups[1].id, canary: ups[2].id, acme: ups[3].id })[name]!;
const via = async (path: string, headers: Record<string, string> = {}) => {
  const r = await send({ port, path, headers });
  expect(r.status, r.text).toBe(200);
  return (r.json as { id: string }).id;
};
const route = (name: string) => model.routes.find((r) => r.name === name)!;
const jwt = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject('u').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

beforeAll(async () => {
  ups = await startUpstreams(4, { idPrefix: 't' });
  port = await freePort();
  const env = { GW_TRAFFIC_SECRET: SECRET };
  process.env.GW_TRAFFIC_SECRET = SECRET; // for the route command, which reads the environment
  ec = await generateKeyPair('ES256', { extractable: true });
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'es-1', alg: 'ES256', use: 'sig' }] });
  project = await startProject({ 'gateway.yaml': yaml(ups.map((u) => u.address)), 'jwks.json': jwks }, [port], { env });
  model = compile(`${project.dir}/gateway.yaml`, { env }).model!;
});

afterAll(async () => {
  await project?.stop();
  await closeAll(ups);
});

describe('traffic routing', () => {
  it('header, cookie and query rules pick their pool, first match wins; the default catches the rest', async () => {
    await withErrorLog(project.gw, async () => {
      expect(await via('/api/x', { 'X-Canary': '1' })).toBe(idOf('canary'));
      expect(await via('/api/x', { 'X-Canary': 'GREEN' })).toBe(idOf('green')); // map values compare case-insensitively
      expect(await via('/api/x', { Cookie: 'a=b; release=green' })).toBe(idOf('green'));
      expect(await via('/api/x?pool=canary')).toBe(idOf('canary'));
      // the header rule comes first
      expect(await via('/api/x?pool=canary', { 'X-Canary': 'green' })).toBe(idOf('green'));
      for (const [p, h] of [['/api/x', {}], ['/api/x', { 'X-Canary': '2' }], ['/api/x?pool=other', { Cookie: 'release=blue' }]] as const) {
        expect(await via(p, h), `${p} ${JSON.stringify(h)}`).toBe(idOf('blue'));
      }
      // the path reaches the chosen upstream as it came
      const r = await send({ port, path: '/api/x/y?pool=canary&z=1' });
      expect((r.json as { path: string }).path).toBe('/api/x/y?pool=canary&z=1');
      // what gatewayctl route predicts for the same requests
      expect(explainTraffic(model, route('api'), { headers: { 'x-canary': 'Green' } }).upstream).toBe('green');
      expect(explainTraffic(model, route('api'), { query: { pool: 'canary' } }).upstream).toBe('canary');
      expect(explainTraffic(model, route('api'), {}).upstream).toBe('blue');
    });
  });

  it('a 90/10 split over 1,000 requests lands within a few percent', async () => {
    await withErrorLog(project.gw, async () => {
      const counts: Record<string, number> = {};
      for (let i = 0; i < 1000; i++) {
        const id = await via(`/split/${i}`);
        counts[id] = (counts[id] ?? 0) + 1;
      }
      expect(Object.keys(counts).sort()).toEqual([idOf('blue'), idOf('green')].sort());
      expect(counts[idOf('green')]).toBeGreaterThan(70);
      expect(counts[idOf('green')]).toBeLessThan(130);
      expect(explainTraffic(model, route('split'), {}).shares).toEqual({ green: 0.1, blue: 0.9 });
    });
  });

  it('a traffic block that chooses nothing (split: {}, the canary ramped down) sends every request to the route\'s upstream', async () => {
    await withErrorLog(project.gw, async () => {
      for (let i = 0; i < 20; i++) expect(await via(`/ramped/${i}`)).toBe(idOf('blue'));
      expect(explainTraffic(model, route('ramped'), {}).upstream).toBe('blue');
    });
  });

  it('a sticky split keeps each client on one side, where gatewayctl route says; rules still come first', async () => {
    await withErrorLog(project.gw, async () => {
      const seen: Record<string, number> = {};
      for (let i = 0; i < 200; i++) {
        const user = `user-${i}`;
        const predicted = explainTraffic(model, route('sticky'), { headers: { 'X-User': user } }).upstream!;
        const got = await via('/sticky/a', { 'X-User': user });
        expect(got, user).toBe(idOf(predicted));
        expect(await via('/sticky/b', { 'X-User': user })).toBe(got);
        seen[predicted] = (seen[predicted] ?? 0) + 1;
      }
      expect(seen.green).toBeGreaterThan(30);
      expect(seen.blue).toBeGreaterThan(100);
      expect(await via('/sticky/a', { 'X-User': 'user-1', 'X-Canary': '1' })).toBe(idOf('canary'));
      // the command prints the same prediction
      for (const user of ['user-3', 'user-4', 'user-5']) {
        const out = await capture(() => routeCommand({ config: `${project.dir}/gateway.yaml`, route: 'sticky', header: [`X-User: ${user}`] }));
        expect(out.code, out.stderr).toBe(0);
        const side = /^route sticky → (\w+)$/m.exec(out.stdout)![1];
        expect(idOf(side), user).toBe(await via('/sticky/c', { 'X-User': user }));
      }
    });
  });

  it('a JWT claim value picks the pool (the claim the JWT handler verified; no njs call of its own)', async () => {
    await withErrorLog(project.gw, async () => {
      expect(await via('/tenant/x', { Authorization: `Bearer ${await jwt({ tenant: 'acme' })}` })).toBe(idOf('acme'));
      expect(await via('/tenant/x', { Authorization: `Bearer ${await jwt({ tenant: 'globex' })}` })).toBe(idOf('blue'));
      expect(await via('/tenant/x', { Authorization: `Bearer ${await jwt({})}` })).toBe(idOf('blue'));
      // the claim is read from the verified token only: a client header cannot steer it
      expect(await via('/tenant/x', { Authorization: `Bearer ${await jwt({ tenant: 'globex' })}`, 'X-Gw-Claims': 'acme' })).toBe(idOf('blue'));
      expect((await send({ port, path: '/tenant/x' })).status).toBe(401);
      // ES256: verified in the auth_request subrequest (then from the verified-token cache)
      const es = (claims: Record<string, unknown>) =>
        new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'es-1' }).setSubject('u').setIssuedAt().setExpirationTime('5m').sign(ec.privateKey);
      const acme = await es({ tenant: 'acme' });
      for (let i = 0; i < 3; i++) expect(await via('/tenant-es/x', { Authorization: `Bearer ${acme}` })).toBe(idOf('acme'));
      expect(await via('/tenant-es/x', { Authorization: `Bearer ${await es({ tenant: 'initech' })}` })).toBe(idOf('blue'));
      const manifest = JSON.parse(project.files['manifest.json']) as { routes: { name: string; njsCalls: number; byFeature: Record<string, number> }[] };
      expect(manifest.routes.find((r) => r.name === 'tenants')).toEqual({ name: 'tenants', njsCalls: 1, byFeature: { auth: 1 } });
      expect(manifest.routes.find((r) => r.name === 'sticky')).toEqual({ name: 'sticky', njsCalls: 0, byFeature: {} });
    });
  });
});
