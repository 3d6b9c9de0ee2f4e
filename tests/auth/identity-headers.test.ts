// A client can never set an identity header, through real nginx to a real echo upstream:
// every name the gateway knows (the defaults and the configured names, forwarded or disabled
// with `false`) is replaced or removed on every route, with and without an `auth:` section.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { startProject, type Project as AuthProject } from '../support/gateway.ts';
import { request } from '../support/http.ts';

const HS_SECRET = 'identity-test-secret-0123456789abcdef';

// everything a client might try: the five default names and the configured one
const FORGED = {
  'X-Gateway-Client': 'mallory',
  'X-Gateway-Role': 'admin',
  'X-Gateway-Tier': 'platinum',
  'X-Gateway-Auth': 'jwt',
  'X-Gateway-Claims': 'eyJyb2xlIjoiYWRtaW4ifQ',
  'X-Caller': 'mallory',
};
const lower = (o: Record<string, string>) => Object.keys(o).map((k) => k.toLowerCase());

interface Echo {
  headers: Record<string, string | undefined>;
}

describe('identity headers with auth: role and claims disabled, client renamed', () => {
  let project: AuthProject;
  let upstream: EchoUpstream;
  let port: number;
  let aliceKey: string;
  const get = async (p: string, headers: Record<string, string>) => {
    const r = await request(`http://127.0.0.1:${port}${p}`, headers);
    expect(r.status, `${p}: ${r.text}\n${project.gw.errorLog()}`).toBe(200);
    return (r.json as Echo).headers;
  };

  beforeAll(async () => {
    upstream = await startEchoUpstream({ id: 'app' });
    port = await freePort();
    const store: KeyFile = { version: 1, keys: [] };
    aliceKey = createKey(store, { name: 'alice', role: 'user', tier: 'free' }, new Date()).key;
    project = await startProject(
      {
        'gateway.yaml': `version: 1
global:
  status: false
listeners:
  - name: main
    port: ${port}
    address: 127.0.0.1
upstreams:
  app:
    servers: [${upstream.address}]
auth:
  api_keys: { file: keys.yaml }
  jwt:
    internal:
      algorithms: [HS256]
      secret_env: GW_IDENTITY_SECRET
      role_claim: role
  identity_headers: { role: false, claims: false, client: X-Caller }
routes:
  - name: public
    match: { prefix: /public/ }
    upstream: app
  - name: key
    match: { prefix: /key/ }
    upstream: app
    auth: api_key
  - name: either
    match: { prefix: /either/ }
    upstream: app
    auth: { methods: [api_key, jwt] }
  - name: jwt
    match: { prefix: /jwt/ }
    upstream: app
    auth: jwt
`,
        'keys.yaml': serializeKeys(store),
      },
      [port],
      { env: { GW_IDENTITY_SECRET: HS_SECRET } },
    );
  });

  afterAll(async () => {
    await project?.stop();
    await upstream?.close();
  });

  it('public route: none of the names reaches the upstream', async () => {
    const h = await get('/public/', FORGED);
    for (const name of lower(FORGED)) expect(h[name], name).toBeUndefined();
  });

  it('API-key route: the gateway sets what is enabled, the disabled and default names are removed', async () => {
    const h = await get('/key/', { ...FORGED, 'X-API-Key': aliceKey });
    expect(h['x-caller']).toBe('alice');
    expect(h['x-gateway-tier']).toBe('free');
    expect(h['x-gateway-auth']).toBe('apikey');
    expect(h['x-gateway-role']).toBeUndefined(); // disabled: neither the real role nor the forged one
    expect(h['x-gateway-claims']).toBeUndefined();
    expect(h['x-gateway-client']).toBeUndefined(); // the default name of the renamed header
  });

  it('either-method route, with a key and with a JWT', async () => {
    const k = await get('/either/', { ...FORGED, 'X-API-Key': aliceKey });
    expect(k['x-caller']).toBe('alice');
    expect(k['x-gateway-auth']).toBe('apikey');
    expect(k['x-gateway-role']).toBeUndefined();
    expect(k['x-gateway-claims']).toBeUndefined();
    expect(k['x-gateway-client']).toBeUndefined();
    const now = Math.floor(Date.now() / 1000);
    const t = await new SignJWT({ role: 'reader' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('svc-1')
      .setIssuedAt(now - 5)
      .setExpirationTime(now + 300)
      .sign(new TextEncoder().encode(HS_SECRET));
    for (const [p, what] of [
      ['/either/', 'either'],
      ['/jwt/', 'jwt only'],
    ]) {
      const j = await get(p, { ...FORGED, Authorization: `Bearer ${t}` });
      expect(j['x-caller'], what).toBe('svc-1');
      expect(j['x-gateway-auth'], what).toBe('jwt');
      expect(j['x-gateway-role'], what).toBeUndefined();
      expect(j['x-gateway-claims'], what).toBeUndefined();
      expect(j['x-gateway-client'], what).toBeUndefined();
    }
  });
});

describe('identity headers without an auth section', () => {
  let project: AuthProject;
  let upstream: EchoUpstream;
  let port: number;

  beforeAll(async () => {
    upstream = await startEchoUpstream({ id: 'plain' });
    port = await freePort();
    project = await startProject(
      {
        'gateway.yaml': `version: 1
global:
  status: false
listeners:
  - name: main
    port: ${port}
    address: 127.0.0.1
upstreams:
  app:
    servers: [${upstream.address}]
routes:
  - name: open
    match: { prefix: /open/ }
    upstream: app
  - name: tagged
    match: { prefix: /tagged/ }
    upstream: app
    set_headers: { X-Gateway-Tier: internal }
`,
      },
      [port],
    );
  });

  afterAll(async () => {
    await project?.stop();
    await upstream?.close();
  });

  it('the default names sent by a client never reach the upstream', async () => {
    const r = await request(`http://127.0.0.1:${port}/open/`, FORGED);
    expect(r.status, r.text).toBe(200);
    const h = (r.json as Echo).headers;
    for (const name of ['x-gateway-client', 'x-gateway-role', 'x-gateway-tier', 'x-gateway-auth', 'x-gateway-claims']) {
      expect(h[name], name).toBeUndefined();
    }
    expect(h['x-caller']).toBe('mallory'); // not an identity header here: passed as any header
  });

  it("a route's own set_headers value is the one forwarded, never the client's", async () => {
    const r = await request(`http://127.0.0.1:${port}/tagged/`, FORGED);
    expect(r.status, r.text).toBe(200);
    const h = (r.json as Echo).headers;
    expect(h['x-gateway-tier']).toBe('internal');
    expect(h['x-gateway-role']).toBeUndefined();
  });
});
