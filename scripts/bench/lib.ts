// The benchmark engine behind scripts/bench.ts and tests/bench/guard.test.ts: starts one
// `return 200` backend and three nginx instances of the project runtime (one worker each) —
// the hand-written baseline proxy, the hand-written njs reference points and the gateway
// gatewayctl compiles — then drives every scenario for a fixed time per round and reads the
// CPU time of the serving worker from /proc. Rounds interleave the scenarios (each round in
// a rotated order), so drift on a shared machine hits every row alike; every row is also
// reported as a ratio to the baseline measured in the same round.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cpuNs, cpuSplitUs, waitForWorker } from '../../src/bench/cpu.ts';
import { startGateway, startRawNginx, type Gateway } from '../../tests/support/nginx.ts';
import { freePort } from '../../tests/support/ports.ts';
import { pickClient, run, type ClientKind, type RequestShape } from '../../src/bench/load.ts';
import { buildProductFor, HEALTH_ROUTES, hsToken, routeOfPath, writeCredentials, type Credentials } from './product.ts';
import { benchBackend, baselineConf, referenceConf, referenceKey, SLOW_MS, SLOW_PATH, STREAM_CHUNKS, STREAM_PATH } from './reference.ts';

export type Target = 'baseline' | 'reference' | 'product';

export interface Scenario {
  name: string;
  label: string;
  target: Target;
  shape: (c: Credentials & { refHsToken: string }) => RequestShape;
  /** Fresh tokens of this algorithm for every measurement (first sight). */
  freshTokens?: 'ES256' | 'HS256';
  /** Latency-bound (the backend waits): counted by callgrind (scripts/bench/instructions.ts),
   *  left out of CPU-time runs unless asked for by name (its CPU per request is not comparable). */
  slow?: boolean;
}

const NO_CRED: [string, string] = ['X-Bench', '1'];
export const BASELINE = 'nginx_proxy';

export const SCENARIOS: Scenario[] = [
  { name: BASELINE, label: 'plain nginx proxy_pass + keepalive (baseline)', target: 'baseline', shape: () => ({ method: 'GET', path: '/', header: NO_CRED }) },
  { name: 'nginx_proxy_post', label: 'plain nginx proxy_pass, POST JSON body', target: 'baseline', shape: () => ({ method: 'POST', path: '/', header: NO_CRED }) },
  { name: 'njs_noop', label: 'njs js_set no-op (floor of any njs)', target: 'reference', shape: () => ({ method: 'GET', path: '/noop', header: NO_CRED }) },
  { name: 'njs_sha256_map', label: 'minimal njs SHA-256(API key) + map (1,000 keys)', target: 'reference', shape: () => ({ method: 'GET', path: '/sha', header: ['X-API-Key', referenceKey(500)] }) },
  { name: 'njs_sha256_limit_hash', label: 'hand-written SHA-256 + map + per-client limit + consistent hash', target: 'reference', shape: () => ({ method: 'GET', path: '/sha_lh', header: ['X-API-Key', referenceKey(500)] }) },
  { name: 'njs_sha256_full', label: 'hand-written SHA-256 + map with the API-key row\'s other per-request features', target: 'reference', shape: () => ({ method: 'GET', path: '/sha_full', header: ['X-API-Key', referenceKey(500)] }) },
  { name: 'njs_hs256', label: 'minimal njs HS256 verify', target: 'reference', shape: (c) => ({ method: 'GET', path: '/hs256', header: ['Authorization', `Bearer ${c.refHsToken}`] }) },
  { name: 'njs_hs256_cached', label: 'minimal njs HS256 with a verified-token cache keyed by SHA-256(token)', target: 'reference', shape: (c) => ({ method: 'GET', path: '/hs256_cached', header: ['Authorization', `Bearer ${c.refHsToken}`] }) },
  { name: 'njs_hs256_cached_raw', label: 'minimal njs HS256 with a verified-token cache keyed by the token', target: 'reference', shape: (c) => ({ method: 'GET', path: '/hs256_cached_raw', header: ['Authorization', `Bearer ${c.refHsToken}`] }) },
  { name: 'njs_hs256_cached_full', label: 'hand-written cached HS256 (keyed by the token) with the JWT row\'s other per-request features', target: 'reference', shape: (c) => ({ method: 'GET', path: '/hs256_cached_full', header: ['Authorization', `Bearer ${c.refHsToken}`] }) },
  { name: 'njs_log_counter', label: 'njs shared-dict counter in the log phase', target: 'reference', shape: () => ({ method: 'GET', path: '/counter', header: NO_CRED }) },
  { name: 'gw_plain', label: 'gatewayctl: plain route', target: 'product', shape: () => ({ method: 'GET', path: '/plain', header: NO_CRED }) },
  { name: 'gw_slow', label: `gatewayctl: plain route, upstream answers in ${SLOW_MS} ms`, target: 'product', slow: true, shape: () => ({ method: 'GET', path: SLOW_PATH, header: NO_CRED }) },
  { name: 'gw_stream', label: `gatewayctl: streamed chat completion, ${STREAM_CHUNKS} content events + usage (one request)`, target: 'product', slow: true, shape: () => ({ method: 'GET', path: STREAM_PATH, header: NO_CRED }) },
  { name: 'gw_traffic', label: 'gatewayctl: traffic rules (header, cookie) + sticky 90/10 split', target: 'product', shape: () => ({ method: 'GET', path: '/traffic', header: NO_CRED }) },
  { name: 'gw_api_key', label: 'gatewayctl: API key + per-client limit + consistent hash', target: 'product', shape: (c) => ({ method: 'GET', path: '/apikey', header: ['X-API-Key', c.apiKey] }) },
  { name: 'gw_api_key_njs', label: 'gatewayctl: the same, a key without an id (checked by njs)', target: 'product', shape: (c) => ({ method: 'GET', path: '/apikey', header: ['X-API-Key', c.apiKeyNjs] }) },
  { name: 'gw_jwt_hs256', label: 'gatewayctl: JWT HS256 + per-client limit', target: 'product', shape: (c) => ({ method: 'GET', path: '/hs', header: ['Authorization', `Bearer ${c.hsToken}`] }) },
  { name: 'gw_jwt_hs256_first', label: 'gatewayctl: JWT HS256 + per-client limit, each token new', target: 'product', freshTokens: 'HS256', shape: () => ({ method: 'GET', path: '/hs', header: ['Authorization', 'Bearer -'] }) },
  { name: 'gw_jwt_es256_repeat', label: 'gatewayctl: JWT ES256 + per-client limit, same token', target: 'product', shape: (c) => ({ method: 'GET', path: '/es', header: ['Authorization', `Bearer ${c.esToken}`] }) },
  { name: 'gw_jwt_es256_first', label: 'gatewayctl: JWT ES256 + per-client limit, each token new', target: 'product', freshTokens: 'ES256', shape: () => ({ method: 'GET', path: '/es', header: ['Authorization', 'Bearer -'] }) },
  { name: 'gw_model', label: 'gatewayctl: model routing (POST)', target: 'product', shape: () => ({ method: 'POST', path: '/v1/chat/completions', header: NO_CRED }) },
  { name: 'gw_body_hash', label: 'gatewayctl: consistent hash on a body field (POST)', target: 'product', shape: () => ({ method: 'POST', path: '/body', header: NO_CRED }) },
  { name: 'gw_health', label: 'gatewayctl: plain route, health check + breaker, all up', target: 'product', shape: () => ({ method: 'GET', path: '/checked', header: NO_CRED }) },
  { name: 'gw_health_steered', label: 'gatewayctl: plain route, one of two servers down (steered)', target: 'product', shape: () => ({ method: 'GET', path: '/steered', header: NO_CRED }) },
];

export interface BenchOptions {
  /** Seconds of load per scenario and round. */
  seconds: number;
  rounds: number;
  /** Seconds of warm-up per scenario before the first round. */
  warmup: number;
  connections: number;
  threads: number;
  client: 'auto' | ClientKind;
  /** Measure the baseline next to every row (twice the time; ratios less sensitive to drift). */
  paired?: boolean;
  /** Scenario names to run (the baseline is always added). */
  only?: string[];
  /** Build the product with auth.jwt_cache: false. */
  noJwtCache?: boolean;
  /** Build the product with `metrics: {}` (the log-phase metrics call on every route). */
  metrics?: boolean;
  /** Build the product with `admin_api:` (runtime keys: the API-key route's flag test). */
  liveKeys?: boolean;
  /**
   * Each gatewayctl row on a gateway of its own with only its route (and `plain`), as the
   * hand-written rows each carry only their own feature: its njs module then holds only the
   * handlers that route calls (each handler in the module costs every njs request ~800
   * instructions: README, "Performance"). By default every row shares one gateway.
   */
  solo?: boolean;
  log?: (line: string) => void;
}

export const DEFAULTS: BenchOptions = { seconds: 3, rounds: 3, warmup: 1, connections: 32, threads: 2, client: 'auto' };

export interface Spread {
  min: number;
  median: number;
  max: number;
}
export interface Row {
  name: string;
  label: string;
  target: Target;
  /** Gateway worker CPU per request, µs. */
  cpuUs: Spread;
  /** The same, split into user and system (kernel) time, µs (clock ticks: coarser than cpuUs). */
  userUs: Spread;
  sysUs: Spread;
  /**
   * The worker's CPU over all of the row's measured rounds, µs: by the scheduler (what cpuUs
   * divides) and as user + system clock ticks (what userUs and sysUs divide). Totals, not
   * medians: a round's ticks are read to 10 ms, which on a loaded machine is a large share of
   * a half-second round, so only the sums show whether the split adds up.
   */
  cpuTotalUs: number;
  ticksTotalUs: number;
  rps: Spread;
  /** Per-round ratios to the baseline of the same round (with `paired`, the baseline measured next to the row). */
  cpuRatio: Spread;
  rpsRatio: Spread;
  /** Median CPU per request over the rounds / the baseline's median: less sensitive to one noisy baseline sample (what the CI guard compares). */
  cpuRatioOfMedians: number;
  requests: number;
  /** First-sight rows: some token was sent twice (the pool ran out). */
  reusedTokens?: boolean;
}
export interface Report {
  client: ClientKind;
  seconds: number;
  rounds: number;
  paired: boolean;
  /** Each gatewayctl row ran on a gateway of its own route (BenchOptions.solo). */
  solo: boolean;
  connections: number;
  threads: number;
  cpus: number;
  date: string;
  rows: Row[];
}

export { cpuNs };

export function spread(xs: number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { min: s[0], median, max: s[s.length - 1] };
}

// (nginx answers on its ports before its worker exists: wait for it)
const workerPid = (gw: Gateway): Promise<number> => waitForWorker(gw.pid);

/** Pre-flight: one request per scenario must answer 200, so no row measures an error path. */
async function check(port: number, s: RequestShape, name: string): Promise<void> {
  const headers: Record<string, string> = { [s.header[0]]: s.header[1] };
  if (s.tokens) headers.Authorization = `Bearer ${s.tokens[0]}`;
  const init: RequestInit = { method: s.method, headers };
  if (s.method === 'POST') {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify({ model: 'gpt-4o', user: 'u', messages: [] });
  }
  const res = await fetch(`http://127.0.0.1:${port}${s.path}`, init);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${name}: pre-flight request answered ${res.status}, not 200`);
}

export async function runBench(partial: Partial<BenchOptions> = {}): Promise<Report> {
  const opts: BenchOptions = { ...DEFAULTS, ...partial };
  const log = opts.log ?? (() => {});
  const client = pickClient(opts.client);
  const scenarios = SCENARIOS.filter((s) => s.name === BASELINE || (opts.only ? opts.only.includes(s.name) : !s.slow));
  if (opts.only) for (const n of opts.only) if (!SCENARIOS.some((s) => s.name === n)) throw new Error(`unknown scenario ${n}`);

  const work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-bench-'));
  const started: Gateway[] = [];
  try {
    const [backA, backB, basePort, refPort, gwPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const backend = benchBackend([backA, backB]);
    started.push(await startRawNginx(backend.conf, [backA, backB], { files: backend.files }));
    const baseline = await startRawNginx(baselineConf(basePort, backA), [basePort]);
    started.push(baseline);
    const ref = referenceConf(refPort, backA);
    const reference = await startRawNginx(ref.conf, [refPort], { files: ref.files });
    started.push(reference);
    const creds = await writeCredentials(work);
    // the product gateway of a set of routes (all when null); health-checked upstreams probe
    // from the measured worker: only when their rows run
    const productGateway = async (routes: string[] | null, port: number): Promise<Gateway> => {
      const health = (routes ? routes.some((r) => HEALTH_ROUTES.includes(r)) : scenarios.some((s) => s.name.startsWith('gw_health'))) || !!opts.liveKeys;
      const dist = await buildProductFor(work, routes, port, [backA, backB], { jwtCache: !opts.noJwtCache, metrics: opts.metrics, liveKeys: opts.liveKeys, health });
      const gw = await startGateway({ distDir: dist, ports: [port] });
      started.push(gw);
      return gw;
    };
    const allCreds = { ...creds, refHsToken: await hsToken(Math.floor(Date.now() / 1000) + 6 * 3600) };
    const targets: Record<Target, { port: number; worker: number }> = {
      baseline: { port: basePort, worker: await workerPid(baseline) },
      reference: { port: refPort, worker: await workerPid(reference) },
      product: { port: gwPort, worker: 0 },
    };
    // --solo: a gateway per product row; else one for all of them
    const soloTargets: Record<string, { port: number; worker: number }> = {};
    if (opts.solo) {
      // rows of one route (ES256 first sight and repeated) share its gateway
      const byRoute: Record<string, { port: number; worker: number }> = {};
      for (const s of scenarios) {
        if (s.target !== 'product') continue;
        const route = routeOfPath(s.shape(allCreds).path);
        if (!byRoute[route]) {
          const port = await freePort();
          byRoute[route] = { port, worker: await workerPid(await productGateway(route === 'plain' ? [] : [route], port)) };
        }
        soloTargets[s.name] = byRoute[route];
      }
    } else if (scenarios.some((s) => s.target === 'product')) {
      targets.product.worker = await workerPid(await productGateway(null, gwPort));
    }
    const targetOf = (s: Scenario) => soloTargets[s.name] ?? targets[s.target];
    const loadOpts = (port: number, seconds: number) => ({ port, seconds, connections: opts.connections, threads: opts.threads, workDir: work });

    // first-sight rows get a new pool of tokens for every measurement, sized from the warm-up rate
    const freshRate: Record<string, number> = {};
    const shapeFor = async (s: Scenario, seconds: number): Promise<RequestShape> => {
      const shape = s.shape(allCreds);
      if (s.freshTokens) shape.tokens = await creds.fresh(s.freshTokens, Math.ceil((freshRate[s.name] ?? 2000) * seconds * 1.5) + opts.connections * 4);
      return shape;
    };

    for (const s of scenarios) {
      const t = targetOf(s);
      const shape = await shapeFor(s, opts.warmup);
      await check(t.port, shape, s.name);
      const w = await run(client, shape, loadOpts(t.port, opts.warmup));
      if (w.errors) throw new Error(`${s.name}: ${w.errors} failed requests during warm-up`);
      freshRate[s.name] = w.requests / w.seconds;
      log(`warm-up ${s.name}: ${Math.round(w.requests / w.seconds)} req/s`);
    }

    const raw: Record<string, { cpu: number[]; user: number[]; sys: number[]; rps: number[]; requests: number; cpuTotal: number; ticksTotal: number; reused: boolean }> = {};
    const measure = async (s: Scenario, round: number): Promise<{ cpu: number; rps: number }> => {
      const t = targetOf(s);
      const shape = await shapeFor(s, opts.seconds);
      const c0 = cpuNs(t.worker);
      const s0 = cpuSplitUs(t.worker);
      const r = await run(client, shape, loadOpts(t.port, opts.seconds));
      const s1 = cpuSplitUs(t.worker);
      const cpuWindow = (cpuNs(t.worker) - c0) / 1e3;
      const cpu = cpuWindow / Math.max(1, r.requests);
      if (r.errors) throw new Error(`${s.name}: ${r.errors} failed requests in round ${round + 1}`);
      if (r.requests === 0) throw new Error(`${s.name}: no request completed in round ${round + 1}`);
      const rps = r.requests / r.seconds;
      const user = s1.user - s0.user;
      const sys = s1.sys - s0.sys;
      const acc = (raw[s.name] ??= { cpu: [], user: [], sys: [], rps: [], requests: 0, cpuTotal: 0, ticksTotal: 0, reused: false });
      acc.cpuTotal += cpuWindow;
      acc.ticksTotal += user + sys;
      acc.cpu.push(cpu);
      acc.user.push(user / r.requests);
      acc.sys.push(sys / r.requests);
      acc.rps.push(rps);
      acc.requests += r.requests;
      if (shape.tokens && r.requests > shape.tokens.length) acc.reused = true;
      log(`round ${round + 1}/${opts.rounds} ${s.name}: ${cpu.toFixed(1)} µs/req, ${Math.round(rps)} req/s`);
      return { cpu, rps };
    };
    // per round and row: the row's figures and the baseline figures its ratio is taken to
    type Pair = { cpu: number; rps: number; base: { cpu: number; rps: number } };
    const perRound: Array<Record<string, Pair>> = [];
    const baselineScenario = scenarios.find((s) => s.name === BASELINE)!;
    const others = scenarios.filter((s) => s !== baselineScenario);
    for (let round = 0; round < opts.rounds; round++) {
      const order = others.map((_, i) => others[(i + round) % others.length]);
      const got: Record<string, Pair> = {};
      if (opts.paired) {
        // the baseline right next to every row (alternately before and after it)
        for (const s of order) {
          const first = round % 2 === 0;
          const b1 = first ? await measure(baselineScenario, round) : undefined;
          const m = await measure(s, round);
          const base = b1 ?? (await measure(baselineScenario, round));
          got[s.name] = { ...m, base };
        }
        const bs = raw[BASELINE];
        const k = order.length;
        const base = { cpu: spread(bs.cpu.slice(-k)).median, rps: spread(bs.rps.slice(-k)).median };
        got[BASELINE] = { ...base, base };
      } else {
        const at = round % scenarios.length;
        const seq = [...order.slice(0, at), baselineScenario, ...order.slice(at)];
        const m: Record<string, { cpu: number; rps: number }> = {};
        for (const s of seq) m[s.name] = await measure(s, round);
        for (const s of seq) got[s.name] = { ...m[s.name], base: m[BASELINE] };
      }
      perRound.push(got);
    }

    const rows: Row[] = scenarios.map((s) => ({
      name: s.name,
      label: s.label,
      target: s.target,
      cpuUs: spread(raw[s.name].cpu),
      userUs: spread(raw[s.name].user),
      sysUs: spread(raw[s.name].sys),
      cpuTotalUs: raw[s.name].cpuTotal,
      ticksTotalUs: raw[s.name].ticksTotal,
      rps: spread(raw[s.name].rps),
      cpuRatio: spread(perRound.map((g) => g[s.name].cpu / g[s.name].base.cpu)),
      rpsRatio: spread(perRound.map((g) => g[s.name].rps / g[s.name].base.rps)),
      cpuRatioOfMedians: spread(raw[s.name].cpu).median / spread(raw[BASELINE].cpu).median,
      requests: raw[s.name].requests,
      ...(s.freshTokens ? { reusedTokens: raw[s.name].reused } : {}),
    }));
    const { availableParallelism } = await import('node:os');
    return { client, seconds: opts.seconds, rounds: opts.rounds, paired: !!opts.paired, solo: !!opts.solo, connections: opts.connections, threads: opts.threads, cpus: availableParallelism(), date: new Date().toISOString(), rows };
  } finally {
    for (const g of started.reverse()) await g.stop().catch(() => {});
    await rm(work, { recursive: true, force: true });
  }
}

const f = (x: number, d: number) => x.toFixed(d);
/** The human table: one row per scenario, medians with [min–max]. */
export function formatTable(r: Report): string {
  const lines: string[] = [];
  lines.push(`nginx 1 worker each; load: ${r.client}${r.client === 'wrk' ? ` -t${r.threads}` : ''} -c${r.connections}, ${r.seconds}s per scenario x ${r.rounds} rounds (interleaved); ${r.cpus} CPUs`);
  lines.push(r.solo ? 'gatewayctl rows: each on a gateway with only its own route (--solo)' : 'gatewayctl rows: one gateway with every route (--solo: a gateway each)');
  lines.push(`ratios are to the plain nginx proxy ${r.paired ? 'measured next to each row' : 'of the same round'}; figures are median [min–max]`);
  const w = Math.max(...r.rows.map((x) => x.name.length));
  lines.push(`${'scenario'.padEnd(w)}  ${'req/s ratio'.padStart(19)}  ${'CPU µs/req'.padStart(20)}  ${'user + sys'.padStart(11)}  ${'CPU ratio'.padStart(19)}  ${'req/s'.padStart(23)}`);
  for (const x of r.rows) {
    const sp = (s: Spread, d: number, width: number) => `${f(s.median, d)} [${f(s.min, d)}–${f(s.max, d)}]`.padStart(width);
    lines.push(
      `${x.name.padEnd(w)}  ${sp(x.rpsRatio, 2, 19)}  ${sp(x.cpuUs, 1, 20)}  ${`${f(x.userUs.median, 1)} + ${f(x.sysUs.median, 1)}`.padStart(11)}  ${sp(x.cpuRatio, 2, 19)}  ${sp({ min: Math.round(x.rps.min), median: Math.round(x.rps.median), max: Math.round(x.rps.max) }, 0, 23)}${x.reusedTokens ? '  (token pool wrapped)' : ''}`,
    );
  }
  lines.push('');
  for (const x of r.rows) lines.push(`${x.name.padEnd(w)}  ${x.label}`);
  return lines.join('\n');
}
