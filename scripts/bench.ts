// Per-request cost of routing and authentication through real nginx on loopback (prints
// numbers; not a test):
//   plain       round robin, GET                 (baseline)
//   post        round robin, POST with a JSON body (baseline for the body cases)
//   header      consistent_hash on a header (nginx map, no njs)
//   body_field  consistent_hash on a JSON body field (njs js_content → named location)
//   model       model-aware route + body_field pool (njs picks the model and the key)
//   api_key     API key: one js_set (SHA-256) + the key map
//   jwt_hs256   JWT HS256 (one js_set), the same token every request (verified-token cache hit)
//   jwt_hs256_first  JWT HS256, a new token every request (first sight: full verification)
//   jwt_es256   JWT ES256, the same token every request (cache hit: no auth_request subrequest)
//   jwt_es256_first  JWT ES256, a new token every request (js_set miss + auth_request + WebCrypto)
//
// The measure is nginx's own CPU time (utime+stime of its single worker, from /proc) per
// request, so client noise does not count; wall-clock throughput is printed as well. The
// upstream is a `return 200` server inside the same nginx, i.e. a constant cost in every row.
//
//   npx tsx scripts/bench.ts [--requests 20000] [--concurrency 8] [--only plain,jwt_es256,…] [--no-jwt-cache]
// --no-jwt-cache builds with `auth.jwt_cache: false` (every token verified in full).
import { Agent, request } from 'node:http';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { compile } from '../src/build/compile.ts';
import { createKey, saveKeys, type KeyFile } from '../src/keys/store.ts';
import { writeBuild } from '../src/build/write.ts';
import { childPids } from '../src/runtime/nginx/index.ts';
import { startGateway } from '../tests/support/nginx.ts';
import { freePort } from '../tests/support/ports.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const REQUESTS = arg('--requests', 20000);
const CONCURRENCY = arg('--concurrency', 8);
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1].split(',') : null;
const JWT_CACHE = process.argv.includes('--no-jwt-cache') ? '\n  jwt_cache: false' : '';
const bodyFor = (i: number) => JSON.stringify({ model: 'gpt-4o', user: `end-user-${i % 1000}`, messages: [{ role: 'user', content: 'Say hello in five words.' }], temperature: 0 });
const BODY = bodyFor(0);

const yaml = (gw: number, up: number, up2: number) => `
version: 1
global:
  worker_processes: 1
  status: false
  access_log: false
  unsafe_nginx_http: "server { listen 127.0.0.1:${up}; listen 127.0.0.1:${up2}; access_log off; location / { return 200 ok; } }"
listeners:
  - { name: public, address: 127.0.0.1, port: ${gw} }
upstreams:
  rr: { servers: ["127.0.0.1:${up}"], keepalive: 32 }
  hdr: { balance: consistent_hash, hash_key: { header: X-User }, servers: ["127.0.0.1:${up}", "127.0.0.1:${up2}"], keepalive: 32 }
  body: { balance: consistent_hash, hash_key: { body_field: user }, servers: ["127.0.0.1:${up}", "127.0.0.1:${up2}"], keepalive: 32 }
models:
  - { id: gpt-4o, upstream: body }
routes:
  - { name: plain, match: { exact: /plain }, upstream: rr }
  - { name: post, match: { exact: /post }, upstream: rr }
  - { name: header, match: { exact: /header }, upstream: hdr }
  - { name: body, match: { exact: /body, methods: [POST] }, upstream: body }
  - { name: model, match: { exact: /v1/chat/completions, methods: [POST] }, models: route }
  - { name: apikey, match: { exact: /apikey }, upstream: rr, auth: api_key }
  - { name: hs, match: { exact: /hs }, upstream: rr, auth: { methods: [jwt], jwt_provider: hs } }
  - { name: es, match: { exact: /es }, upstream: rr, auth: { methods: [jwt], jwt_provider: es } }
auth:
  api_keys: { file: keys.yaml }
  identity_headers: { claims: false }
  failure_log: false${JWT_CACHE}
  jwt:
    hs: { algorithms: [HS256], secret_file: hs.secret }
    es: { algorithms: [ES256], jwks_file: jwks.json }
`;

interface Scenario {
  name: string;
  path: string;
  method: 'GET' | 'POST';
  headers?: Record<string, string>; // varied per request (value-<i mod 1000>)
  fixedHeaders?: Record<string, string>; // sent as they are (credentials)
  tokens?: string[]; // a new bearer token for every request (never repeated in the run)
  nextToken?: number;
}
const ALL_SCENARIOS: Scenario[] = [
  { name: 'plain', path: '/plain', method: 'GET' },
  { name: 'post', path: '/post', method: 'POST' },
  { name: 'header', path: '/header', method: 'GET', headers: { 'X-User': 'end-user' } },
  { name: 'body_field', path: '/body', method: 'POST' },
  { name: 'model', path: '/v1/chat/completions', method: 'POST' },
  { name: 'api_key', path: '/apikey', method: 'GET' },
  { name: 'jwt_hs256', path: '/hs', method: 'GET' },
  { name: 'jwt_hs256_first', path: '/hs', method: 'GET' },
  { name: 'jwt_es256', path: '/es', method: 'GET' },
  { name: 'jwt_es256_first', path: '/es', method: 'GET' },
];
// the baselines always run: ratios are to them, in the same run
const SCENARIOS = ALL_SCENARIOS.filter((s) => !ONLY || s.name === 'plain' || s.name === 'post' || ONLY.includes(s.name));


function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); // utime + stime (fields 14, 15)
}

async function drive(port: number, s: Scenario, n: number, agent: Agent): Promise<void> {
  let next = 0;
  const one = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const body = bodyFor(i);
      const headers: Record<string, string | number> = s.method === 'POST' ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } : {};
      if (s.headers) for (const [k, v] of Object.entries(s.headers)) headers[k] = `${v}-${i % 1000}`;
      if (s.fixedHeaders) Object.assign(headers, s.fixedHeaders);
      if (s.tokens) headers.Authorization = `Bearer ${s.tokens[(s.nextToken = (s.nextToken ?? 0) + 1) - 1]}`; // consumed across rounds
      const req = request(
        { host: '127.0.0.1', port, path: s.path, method: s.method, agent, headers },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${s.name}: HTTP ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(s.method === 'POST' ? body : undefined);
    });
  const worker = async () => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

const gwPort = await freePort();
const upPort = await freePort();
const upPort2 = await freePort();
const work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-bench-'));
const cfg = path.join(work, 'gateway.yaml');
// credentials for the auth scenarios: a key store, an HMAC secret and an EC key pair
const store: KeyFile = { version: 1, keys: [] };
const apiKey = createKey(store, { name: 'bench' }, new Date()).key;
await saveKeys(path.join(work, 'keys.yaml'), store);
const secret = 'bench-secret-0123456789abcdef0123456789abcdef';
await writeFile(path.join(work, 'hs.secret'), secret);
const ec = await generateKeyPair('ES256', { extractable: true });
await writeFile(path.join(work, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'b1', alg: 'ES256' }] }));
const exp = Math.floor(Date.now() / 1000) + 3600;
const hsToken = await new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(secret));
const esToken = await new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg: 'ES256', kid: 'b1' }).setExpirationTime(exp).sign(ec.privateKey);
const firstSight = async (alg: string, key: Uint8Array | CryptoKey, kid?: string) => {
  const out: string[] = [];
  for (let i = 0; i < REQUESTS * 2 + 500; i++) {
    out.push(await new SignJWT({ sub: `bench-${i}` }).setProtectedHeader(kid ? { alg, kid } : { alg }).setExpirationTime(exp).sign(key));
  }
  return out;
};
for (const s of SCENARIOS) {
  if (s.name === 'jwt_hs256_first' && SCENARIOS.includes(s)) s.tokens = await firstSight('HS256', new TextEncoder().encode(secret));
  if (s.name === 'jwt_es256_first' && SCENARIOS.includes(s)) s.tokens = await firstSight('ES256', ec.privateKey, 'b1');
  if (s.name === 'api_key') s.fixedHeaders = { 'X-API-Key': apiKey };
  if (s.name === 'jwt_hs256') s.fixedHeaders = { Authorization: `Bearer ${hsToken}` };
  if (s.name === 'jwt_es256') s.fixedHeaders = { Authorization: `Bearer ${esToken}` };
}
const r = compile(cfg, { text: yaml(gwPort, upPort, upPort2) });
if (!r.ok || !r.files) {
  console.error(r.diagnostics.map((d) => d.message).join('\n'));
  process.exit(1);
}
writeBuild(path.join(work, 'dist'), r.files);
const gw = await startGateway({ distDir: path.join(work, 'dist'), ports: [gwPort] });
try {
  const worker = childPids(gw.pid)[0];
  const hz = 100; // USER_HZ on Linux
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  for (const s of SCENARIOS) await drive(gwPort, s, 500, agent); // warm up (connections, njs VM)
  const results: Record<string, { cpu: number[]; rps: number[] }> = {};
  for (let round = 0; round < 2; round++) {
    for (const s of SCENARIOS) {
      const c0 = cpuTicks(worker);
      const t0 = process.hrtime.bigint();
      await drive(gwPort, s, REQUESTS, agent);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpuUs = ((cpuTicks(worker) - c0) / hz) * 1e6;
      (results[s.name] ??= { cpu: [], rps: [] }).cpu.push(cpuUs / REQUESTS);
      results[s.name].rps.push(REQUESTS / secs);
    }
  }
  agent.destroy();
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = { GET: mean(results.plain.cpu), POST: mean(results.post.cpu) };
  if (JWT_CACHE) console.log('auth.jwt_cache: false (no verified-token cache)');
  console.log(`nginx 1 worker, ${REQUESTS} requests x 2 rounds per scenario, concurrency ${CONCURRENCY}, body ${Buffer.byteLength(BODY)} B`);
  console.log('scenario          nginx CPU/req   vs baseline    CPU ratio   req/s (client-bound)');
  for (const s of SCENARIOS) {
    const cpu = mean(results[s.name].cpu);
    const delta = cpu - base[s.method];
    const baseName = s.method === 'GET' ? 'plain' : 'post';
    console.log(
      `${s.name.padEnd(16)}  ${cpu.toFixed(1).padStart(8)} µs    ${s.name === baseName ? '   (baseline)' : `${delta >= 0 ? '+' : ''}${delta.toFixed(1).padStart(6)} µs`}    ${(base[s.method] / cpu).toFixed(2).padStart(5)}x    ${Math.round(mean(results[s.name].rps))}`,
    );
  }
  console.log('(CPU ratio = baseline CPU/req ÷ scenario CPU/req, the throughput ratio of a CPU-bound worker)');
  console.log('(CPU includes the in-process `return 200` upstream and the proxy work; /proc ticks are 10 ms, so ±0.5 µs/req at 20000 requests)');
} finally {
  await gw.stop();
  await rm(work, { recursive: true, force: true });
}
