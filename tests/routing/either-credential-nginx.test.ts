// Either credential on routes whose routing reads the body, through real nginx: a model route
// and a body-field-hash route accept a valid API key and a valid JWT (ES256, through the
// auth_request subrequest), refuse bad ones of each with 401 before any upstream byte, and
// still route and hash by the body where `gatewayctl route` says. An accepted key jumps to a
// twin of the njs body step, so every request makes one njs call per phase.
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { explainRoute } from '../../src/routing/explain.ts';
import { freePort } from '../support/ports.ts';
import { closeAll, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';
import { withErrorLog } from '../support/nginx.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { request } from '../support/http.ts';

let project: Project;
let ups: EchoUpstream[] = [];
let port: number;
let key: string;
let ec: CryptoKeyPair;
let other: CryptoKeyPair;
let model: NonNullable<ReturnType<typeof compile>['model']>;

const yaml = (a: string[]) => `version: 1
global: { status: false, worker_processes: 1 }
listeners:
  - { name: main, port: ${port}, address: 127.0.0.1 }
upstreams:
  chat:
    balance: consistent_hash
    hash_key: { body_field: user }
    servers: [${a[0]}, ${a[1]}, ${a[2]}]
  small: { servers: [${a[2]}] }
models:
  - { id: chat-model, upstream: chat }
  - { id: small-model, upstream: small }
auth:
  api_keys: { file: keys.yaml }
  jwt:
    idp: { algorithms: [ES256], jwks_file: jwks.json }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    auth: { methods: [api_key, jwt] }
  - name: embeddings
    match: { exact: /v1/embeddings, methods: [POST] }
    upstream: chat
    auth: { methods: [api_key, jwt] }
`;

const token = (k: CryptoKeyPair, sub = 'jwt-user') =>
  new SignJWT({}).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'es-1' }).setSubject(sub).setIssuedAt().setExpirationTime('5m').sign(k.privateKey);
const idOf = (addr: string) => ups.find((u) => u.address === addr)!.id;
const where = (upstream: string, k: string) => idOf(explainRoute(model, k, { upstream }).peer!);
const post = (p: string, body: unknown, headers: Record<string, string>) =>
  request(`http://127.0.0.1:${port}${p}`, { 'Content-Type': 'application/json', ...headers }, { method: 'POST', body: JSON.stringify(body) });
const hits = () => ups.reduce((n, u) => n + u.hits, 0);

beforeAll(async () => {
  ups = await startUpstreams(3, { idPrefix: 'x' });
  port = await freePort();
  const store: KeyFile = { version: 1, keys: [] };
  key = createKey(store, { name: 'key-client' }, new Date()).key;
  ec = await generateKeyPair('ES256', { extractable: true });
  other = await generateKeyPair('ES256', { extractable: true });
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'es-1', alg: 'ES256', use: 'sig' }] });
  project = await startProject({ 'gateway.yaml': yaml(ups.map((u) => u.address)), 'keys.yaml': serializeKeys(store), 'jwks.json': jwks }, [port]);
  model = compile(`${project.dir}/gateway.yaml`, {}).model!;
});

afterAll(async () => {
  await project?.stop();
  await closeAll(ups);
});

describe('API key or JWT on body-reading routes', () => {
  it('the model route accepts either credential and routes and hashes by the body', async () => {
    await withErrorLog(project.gw, async () => {
      const jwt = await token(ec);
      for (const [method, headers] of [
        ['apikey', { 'X-API-Key': key }],
        ['apikey', { Authorization: `Bearer ${key}` }],
        ['jwt', { Authorization: `Bearer ${jwt}` }],
      ] as const) {
        for (let i = 0; i < 12; i++) {
          const body = { model: 'chat-model', user: `end-${i}`, messages: [{ role: 'user', content: `hi ${i}` }] };
          const r = await post('/v1/chat/completions', body, headers);
          expect(r.status, r.text).toBe(200);
          expect(r.json.id, `${method} end-${i}`).toBe(where('chat', `end-${i}`));
          expect(JSON.parse(r.json.body)).toEqual(body);
          expect(r.json.headers['x-gateway-auth']).toBe(method);
          expect(r.json.headers['x-gateway-client']).toBe(method === 'jwt' ? 'jwt-user' : 'key-client');
          expect(r.json.headers['authorization']).toBeUndefined();
        }
      }
      const small = await post('/v1/chat/completions', { model: 'small-model' }, { Authorization: `Bearer ${jwt}` });
      expect(small.json.id).toBe(ups[2].id);
      const unknown = await post('/v1/chat/completions', { model: 'nope' }, { 'X-API-Key': key });
      expect(unknown.status).toBe(404);
      expect(unknown.json.error.code).toBe('model_not_found');
    });
  });

  it('one base URL for both: the openai SDK with an API key and with a JWT as its key', async () => {
    await withErrorLog(project.gw, async () => {
      for (const [apiKey, who] of [[key, 'key-client'], [await token(ec, 'sdk-user'), 'sdk-user']]) {
        const sdk = new OpenAI({ apiKey, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
        // the echo upstream answers with the request it received
        const r = (await sdk.chat.completions.create({ model: 'chat-model', user: 'end-1', messages: [{ role: 'user', content: 'hi' }] })) as unknown as { id: string; headers: Record<string, string> };
        expect(r.id).toBe(where('chat', 'end-1'));
        expect(r.headers['x-gateway-client']).toBe(who);
        const code = async (headers: Record<string, string>) => {
          const e = await sdk.chat.completions.create({ model: 'chat-model', messages: [] }, { headers }).catch((x: unknown) => x);
          expect(e).toBeInstanceOf(OpenAI.AuthenticationError);
          return (e as InstanceType<typeof OpenAI.AuthenticationError>).code;
        };
        // a key in the key header is judged as a key; a bearer that is no valid key, as a JWT
        expect(await code({ 'X-API-Key': 'gw_' + 'E'.repeat(43) })).toBe('unknown_key');
        expect(await code({ Authorization: 'Bearer gw_' + 'E'.repeat(43) })).toBe('malformed');
      }
    });
  });

  it('the body-field-hash route accepts either credential and hashes on the field', async () => {
    await withErrorLog(project.gw, async () => {
      const jwt = await token(ec);
      for (let i = 0; i < 20; i++) {
        const viaKey = await post('/v1/embeddings', { user: `u${i}`, input: 'x' }, { 'X-API-Key': key });
        const viaJwt = await post('/v1/embeddings', { user: `u${i}`, input: 'y' }, { Authorization: `Bearer ${jwt}` });
        expect(viaKey.status, viaKey.text).toBe(200);
        expect(viaJwt.status, viaJwt.text).toBe(200);
        expect(viaKey.json.id).toBe(where('chat', `u${i}`));
        expect(viaJwt.json.id).toBe(viaKey.json.id);
      }
    });
  });

  it('refuses a bad key, a bad token and no credential with 401 before any upstream byte', async () => {
    await withErrorLog(project.gw, async () => {
      const before = hits();
      const forged = await token(other);
      const cases: [string, Record<string, string>, string][] = [
        ['/v1/chat/completions', { 'X-API-Key': 'gw_' + 'B'.repeat(43) }, 'unknown_key'],
        ['/v1/chat/completions', { Authorization: `Bearer ${forged}` }, 'bad_signature'],
        ['/v1/chat/completions', {}, 'missing_token'],
        ['/v1/embeddings', { 'X-API-Key': 'gw_' + 'C'.repeat(43) }, 'unknown_key'],
        ['/v1/embeddings', { Authorization: `Bearer ${forged}` }, 'bad_signature'],
        // a key header that is sent decides, even next to a valid JWT
        ['/v1/embeddings', { 'X-API-Key': 'gw_' + 'D'.repeat(43), Authorization: `Bearer ${await token(ec)}` }, 'unknown_key'],
      ];
      for (const [p, headers, reason] of cases) {
        const r = await post(p, { model: 'chat-model', user: 'u' }, headers);
        expect(r.status, `${p} ${reason}`).toBe(401);
        expect(r.headers.get('www-authenticate')).toContain('Bearer realm="gateway"');
        // the model route is OpenAI-compatible (code = reason); the plain route keeps the gateway shape
        if (p === '/v1/chat/completions') expect(r.json).toEqual({ error: { message: 'authentication required', type: 'authentication_error', param: null, code: reason } });
        else expect(r.json.error.reason).toBe(reason);
      }
      expect(hits()).toBe(before);
    });
  });
});
