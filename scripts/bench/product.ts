// The gatewayctl side of the benchmark: one gateway.yaml with a route per product scenario,
// compiled by the real compiler, plus the credentials those routes accept.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { compile } from '../../src/build/compile.ts';
import { writeBuild } from '../../src/build/write.ts';
import { createKey, hashKey, KEY_PREFIX, saveKeys, type KeyFile } from '../../src/keys/store.ts';
import { freePort } from '../../tests/support/ports.ts';
import { HS_SECRET, SLOW_PATH, STREAM_PATH } from './reference.ts';

/** A per-client limit high enough never to reject a benchmark request (it still counts). */
const RATE = '100000r/s';

/**
 * `jwtCache: false` builds with `auth.jwt_cache: false` (to measure what the verified-token cache
 * saves); `routes` keeps only the `plain` route and these (a gateway doing one thing: its njs
 * module then holds only the handlers that route calls); `metrics: true` adds `metrics:`
 * (served on the public listener: the bench has no status listener) to measure what the
 * metrics log call costs every route; `health` adds the state-plane routes: a status listener
 * (probes run there) and a port nobody listens on.
 */
export function productYaml(gw: number, backends: [number, number], opts: { jwtCache?: boolean; routes?: string[]; metrics?: boolean; liveKeys?: boolean; health?: { status: number; dead: number } } = {}): string {
  const [a, b] = backends;
  const h = opts.health;
  // with `routes`: only those routes, the upstreams they use and the model catalogue if kept
  const kept = opts.routes ? ['plain', ...opts.routes] : null;
  const uses: Record<string, string[]> = { rr: ['plain', 'slow', 'stream', 'hs', 'es', 'traffic'], rr_b: ['traffic'], by_client: ['apikey'], by_body: ['body', 'model'], checked: ['checked'], steered: ['steered'] };
  let section = '';
  let route = '';
  const keep = (line: string) => {
    section = /^([a-z_]+):/.exec(line)?.[1] ?? section;
    if (!kept) return true;
    if (section === 'routes') {
      // an entry starts with "  - name: x" or "  - { name: x, ... }"; deeper lines belong to it
      route = /^ {2}- (?:\{ )?name: ([a-z]+)/.exec(line)?.[1] ?? (/^ {4}/.test(line) ? route : '');
      return route === '' || kept.includes(route);
    }
    if (section === 'upstreams') {
      const name = /^ {2}([a-z_]+):/.exec(line)?.[1];
      return name === undefined || (uses[name] ?? []).some((r) => kept.includes(r));
    }
    return section !== 'models' || kept.includes('model');
  };
  return `
version: 1
global:
  worker_processes: 1
  status: ${h ? `{ listen: "127.0.0.1:${h.status}" }` : 'false'}
  access_log: false
listeners:
  - { name: public, address: 127.0.0.1, port: ${gw} }
upstreams:
  rr: { servers: ["127.0.0.1:${a}"], keepalive: 32 }
  rr_b: { servers: ["127.0.0.1:${b}"], keepalive: 32 }
  by_client: { balance: consistent_hash, hash_key: client_id, servers: ["127.0.0.1:${a}", "127.0.0.1:${b}"], keepalive: 32 }
  by_body: { balance: consistent_hash, hash_key: { body_field: user }, servers: ["127.0.0.1:${a}", "127.0.0.1:${b}"], keepalive: 32 }
${h ? `  checked: { servers: ["127.0.0.1:${a}", "127.0.0.1:${b}"], keepalive: 32, health_check: { path: /, interval: 1s, timeout: 500ms }, circuit_breaker: {} }
  steered: { servers: ["127.0.0.1:${a}", "127.0.0.1:${h.dead}"], keepalive: 32, health_check: { path: /, interval: 1s, timeout: 500ms, fall: 1 }, circuit_breaker: {} }
` : ''}models:
  - { id: gpt-4o, upstream: by_body }
limits:
  rate:
    per_client: { key: client_id, rate: ${RATE}, burst: 100000 }
routes:
  - { name: plain, match: { exact: /plain }, upstream: rr }
  - { name: slow, match: { exact: ${SLOW_PATH} }, upstream: rr }
  - { name: stream, match: { exact: ${STREAM_PATH} }, upstream: rr, streaming: true }
  - name: traffic
    match: { exact: /traffic }
    upstream: rr
    traffic: { match: [{ header: X-Canary, value: "1", upstream: rr_b }, { cookie: release, value: b, upstream: rr_b }], split: { rr_b: 10 }, sticky: client_ip }
  - { name: apikey, match: { exact: /apikey }, upstream: by_client, auth: api_key, rate_limits: [per_client] }
  - { name: hs, match: { exact: /hs }, upstream: rr, auth: { methods: [jwt], jwt_provider: hs }, rate_limits: [per_client] }
  - { name: es, match: { exact: /es }, upstream: rr, auth: { methods: [jwt], jwt_provider: es }, rate_limits: [per_client] }
  - { name: body, match: { exact: /body, methods: [POST] }, upstream: by_body }
  - { name: model, match: { exact: /v1/chat/completions, methods: [POST] }, models: route }
${h ? `  - { name: checked, match: { exact: /checked }, upstream: checked }
  - { name: steered, match: { exact: /steered }, upstream: steered, retries: { tries: 2 } }
` : ''}auth:
  api_keys: { file: keys.yaml }
  identity_headers: { claims: false }
  failure_log: false
${opts.jwtCache === false ? '  jwt_cache: false\n' : ''}  jwt:
    hs: { algorithms: [HS256], secret_file: hs.secret }
    es: { algorithms: [ES256], jwks_file: jwks.json }
${opts.metrics ? `metrics: { listener: public${!kept || kept.includes('stream') ? ', llm: { routes: [stream] }' : ''} }\n` : ''}${opts.liveKeys && h ? 'admin_api: { token: bench-admin-token-0123456789abcdef }\n' : ''}`
    .split('\n')
    .filter(keep)
    .join('\n');
}

export interface Credentials {
  /** a key carrying its id: nginx checks it (the native lane) */
  apiKey: string;
  /** a key without an id (made before keys carried one): njs checks it */
  apiKeyNjs: string;
  hsToken: string;
  esToken: string;
  /** Distinct tokens (one `jti` each) for the first-sight rows. */
  fresh: (alg: 'ES256' | 'HS256', n: number) => Promise<string[]>;
}

/** Write keys.yaml, hs.secret and jwks.json into `dir` and return what clients send. */
export async function writeCredentials(dir: string): Promise<Credentials> {
  const store: KeyFile = { version: 1, keys: [] };
  const apiKey = createKey(store, { name: 'bench' }, new Date()).key;
  // the older form: no id in the key, no md5 in its record
  const apiKeyNjs = KEY_PREFIX + randomBytes(32).toString('base64url');
  store.keys.push({ ...store.keys[0], id: 'key_00000000b0b0', name: 'bench-njs', hash: hashKey(apiKeyNjs), md5: null });
  await saveKeys(path.join(dir, 'keys.yaml'), store);
  await writeFile(path.join(dir, 'hs.secret'), HS_SECRET);
  const ec = await generateKeyPair('ES256', { extractable: true });
  await writeFile(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'b1', alg: 'ES256' }] }));
  const exp = Math.floor(Date.now() / 1000) + 6 * 3600;
  const es = (jti?: string) => {
    const t = new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg: 'ES256', kid: 'b1' }).setExpirationTime(exp);
    if (jti) t.setJti(jti);
    return t.sign(ec.privateKey as CryptoKey);
  };
  const hsKey = new TextEncoder().encode(HS_SECRET);
  const hs = (jti: string) => new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).setJti(jti).sign(hsKey);
  let fresh = 0;
  return {
    apiKey,
    apiKeyNjs,
    hsToken: await hsToken(exp),
    esToken: await es(),
    fresh: async (alg, n) => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) out.push(await (alg === 'ES256' ? es : hs)(`fresh-${process.pid}-${fresh++}`));
      return out;
    },
  };
}

/**
 * Build the product for a gateway listening on `port`: of every route, in `work` itself (routes
 * null), or of `routes` and `plain` only (`--solo`), in a directory of its own under `work`
 * with the credentials of `work` (so it accepts what the shared one does). `health` adds the
 * status listener and the dead port of the state-plane routes (their probes run in the
 * measured worker, so only when such a route is measured). Returns the dist directory.
 */
export async function buildProductFor(
  work: string,
  routes: string[] | null,
  port: number,
  backends: [number, number],
  opts: { jwtCache?: boolean; metrics?: boolean; liveKeys?: boolean; health: boolean },
): Promise<string> {
  const dir = routes ? path.join(work, `solo-${routes.join('-') || 'plain'}`) : work;
  if (routes) {
    await mkdir(dir);
    for (const f of ['keys.yaml', 'hs.secret', 'jwks.json']) await writeFile(path.join(dir, f), await readFile(path.join(work, f)));
  }
  const health = opts.health ? { status: await freePort(), dead: await freePort() } : undefined;
  const yaml = productYaml(port, backends, { jwtCache: opts.jwtCache, metrics: opts.metrics, liveKeys: opts.liveKeys, health, routes: routes ?? undefined });
  await writeFile(path.join(dir, 'gateway.yaml'), yaml);
  return buildProduct(dir, yaml);
}

/** The state-plane routes: their upstreams are health-checked. */
export const HEALTH_ROUTES = ['checked', 'steered'];

/** The productYaml route a scenario's request path goes to. */
export function routeOfPath(requestPath: string): string {
  const route = ROUTE_OF[requestPath];
  if (!route) throw new Error(`no bench route serves ${requestPath}`);
  return route;
}
const ROUTE_OF: Record<string, string> = { '/plain': 'plain', [SLOW_PATH]: 'slow', [STREAM_PATH]: 'stream', '/traffic': 'traffic', '/checked': 'checked', '/steered': 'steered', '/apikey': 'apikey', '/hs': 'hs', '/es': 'es', '/body': 'body', '/v1/chat/completions': 'model' };

/** An HS256 token for HS_SECRET with `sub: bench` (accepted by both HS256 rows). */
export function hsToken(exp: number): Promise<string> {
  return new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(HS_SECRET));
}

/** Compile `yamlText` (paths relative to `dir`) into `dir/dist`; throws with the diagnostics. */
export function buildProduct(dir: string, yamlText: string): string {
  const r = compile(path.join(dir, 'gateway.yaml'), { text: yamlText });
  if (!r.ok || !r.files) throw new Error(`bench config does not compile:\n${r.diagnostics.map((d) => d.message).join('\n')}`);
  const dist = path.join(dir, 'dist');
  writeBuild(dist, r.files);
  return dist;
}
