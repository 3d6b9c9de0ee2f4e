// `gatewayctl bench -c gateway.yaml`: the user's own config, compiled in-process and adapted
// to a throw-away prefix (src/bench/adapt.ts), served by one nginx worker in front of a stub
// `return 200` backend, next to a hand-written plain nginx proxy of the same runtime (the
// baseline). Each route gets a request that reaches it (src/bench/requests.ts); after a
// pre-flight (2xx or the route is skipped with the status) and a warm-up, rounds interleave
// the routes and the baseline (each round in a rotated order) and read the serving worker's
// CPU time from /proc; every route is reported as CPU µs per request and as a ratio to the
// baseline measured in the same round (GET routes to a GET baseline, body routes to a POST
// one). Everything lives in a temporary directory, removed at the end; every nginx started is
// stopped (stopAll() on a signal). Nothing here prints.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { compile, type Manifest } from '../build/compile.ts';
import { writeBuild } from '../build/write.ts';
import { createKey, loadKeys, saveKeys, type KeyFile } from '../keys/store.ts';
import type { Diagnostic, GatewayModel } from '../model/types.ts';
import { childPids, findNginx, killProcess, preparePrefix, startNginx, waitForPorts, type NginxLocation, type NginxProcess } from '../runtime/nginx/index.ts';
import { benchAdapter, benchRefusals, stubPortCount } from './adapt.ts';
import { cpuNs, cpuSplitUs, waitForWorker } from './cpu.ts';
import { hasBody, pickClient, run, stopLoad, type ClientKind, type RequestShape } from './load.ts';
import { backendConf, baselineConf } from './plain.ts';
import { deriveRequest, type BenchCredentials, type BenchRequest, type RouteOverrides } from './requests.ts';

export interface ConfigBenchOptions {
  config: string;
  seconds: number;
  rounds: number;
  warmup: number;
  connections: number;
  threads: number;
  client: 'auto' | ClientKind;
  /** Per route: a path and headers to use. */
  overrides?: Record<string, RouteOverrides>;
  /** Headers for every route (a route's own override wins). */
  allRoutes?: RouteOverrides;
  /** Routes to measure (default all). */
  only?: string[];
  /** Count instructions per request with callgrind too (`requests` per route). */
  instructions?: { requests: number } | null;
  nginx?: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export interface Spread {
  min: number;
  median: number;
  max: number;
}

export interface ConfigRow {
  route: string;
  method: string;
  path: string;
  credential: BenchRequest['credential'] | null;
  /** njs calls per request (manifest.json routes[].njsCalls) */
  njsCalls: number;
  /** measured, or skipped with `reason` */
  skipped: string | null;
  /** Whether requests reach the upstream (false: the gateway answers itself). */
  proxied: boolean;
  /** the pre-flight status */
  status: number | null;
  cpuUs: Spread | null;
  /** user and system CPU µs/request, medians over the rounds (/proc ticks: README, Performance) */
  userUs: number | null;
  sysUs: number | null;
  /** per-round ratios to the plain proxy of the same round */
  cpuRatio: Spread | null;
  /** median CPU per request / the baseline's median */
  cpuRatioOfMedians: number | null;
  rps: Spread | null;
  requests: number;
  /** requests the stub backend received while this route was measured (health probes included) */
  upstreamRequests: number;
  /** callgrind: instructions per request and the ratio to the plain proxy */
  instructions: { perRequest: number; ratio: number } | null;
}

export interface ConfigReport {
  config: string;
  client: ClientKind;
  seconds: number;
  rounds: number;
  connections: number;
  threads: number;
  cpus: number;
  date: string;
  /** plain nginx CPU µs/request (GET, and POST when some route has a body), instructions/request under callgrind */
  baseline: { get: Spread; post: Spread | null; instructions: number | null; instructionsPost: number | null; getUserUs: number; getSysUs: number };
  rows: ConfigRow[];
  /** what the run changed in the config to run it on loopback */
  notes: string[];
}

/** The config cannot be benchmarked: its diagnostics. */
export class BenchRefused extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super('bench refused the config');
  }
}

export function spread(xs: number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { min: s[0], median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, max: s[s.length - 1] };
}

/** A loopback port free a moment ago (not handed out before in this process). */
const handed = new Set<number>();
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
        const a = srv.address();
        srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
      });
    });
    if (port && !handed.has(port)) {
      handed.add(port);
      return port;
    }
  }
}

// every nginx this module started and has not stopped yet
const live = new Set<number>();

// temporary directories of runs not finished yet
const workDirs = new Set<string>();

/** SIGKILL every nginx and load client the run started and remove its directory (synchronous: for signal and exit handlers). */
export function stopAll(): void {
  stopLoad();
  for (const pid of live) {
    // the master first: killed after its worker, it could fork a new one in between
    const kids = childPids(pid);
    for (const p of [pid, ...kids]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  live.clear();
  for (const d of workDirs) rmSync(d, { recursive: true, force: true });
  workDirs.clear();
}

interface Running {
  proc: NginxProcess;
  stop: () => Promise<void>;
}

async function launch(loc: NginxLocation, bin: string, prefix: string, conf: string, ports: number[], dirs: string[] = []): Promise<Running> {
  await preparePrefix(prefix, loc.modulesDir, { dirs });
  chmodSync(prefix, 0o755); // workers running as nobody (root) reach temp/ and cache/
  const proc = await startNginx({ ...loc, bin }, prefix, conf, { foreground: true, timeoutMs: 120_000 });
  live.add(proc.pid);
  let exited = false;
  void proc.exited?.then(() => (exited = true));
  const stop = async () => {
    if (!live.has(proc.pid)) return;
    live.delete(proc.pid);
    if (!exited) await killProcess(proc.pid, 'SIGTERM', 5_000);
  };
  try {
    await waitForPorts(ports, { timeoutMs: 120_000, alive: () => !exited });
  } catch (e) {
    const log = (() => {
      try {
        return readFileSync(path.join(prefix, 'logs/error.log'), 'utf8').split('\n').slice(-20).join('\n');
      } catch {
        return '';
      }
    })();
    await stop();
    throw new Error(`${(e as Error).message}\n${proc.output()}${log}`);
  }
  return { proc, stop };
}

/** A raw nginx config in its own prefix under `dir`. */
async function launchRaw(loc: NginxLocation, bin: string, dir: string, text: string, ports: number[]): Promise<Running> {
  mkdirSync(path.join(dir, 'conf'), { recursive: true });
  const conf = path.join(dir, 'conf', 'nginx.conf');
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path temp/${t};`).join('\n');
  writeFileSync(conf, `error_log logs/error.log error;\n${text.replace(/^(\s*http\s*\{)/m, `$1\n${temps}`)}`);
  return launch(loc, bin, dir, conf, ports);
}

/** One request; resolves with the status. */
function once(port: number, r: RequestShape): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = hasBody(r.method) ? JSON.stringify({ model: r.model ?? 'gpt-4o', user: 'bench', messages: [{ role: 'user', content: 'hi' }] }) : undefined;
    const headers: Record<string, string> = { ...r.extra, [r.header[0]]: r.header[1] };
    if (body) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) });
    const req = http.request({ host: '127.0.0.1', port, method: r.method, path: r.path, headers, agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Requests the stub has served (its stub_status counter). */
async function stubRequests(statusPort: number): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: statusPort, path: '/', agent: false }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve(t));
    }).on('error', reject);
  });
  // "server accepts handled requests\n A B C" — minus this request itself
  const m = /\n\s*\d+\s+\d+\s+(\d+)/.exec(text);
  return m ? Number(m[1]) - 1 : 0;
}

/** The request of a route as the load clients take it: the first header apart, the rest `extra`. */
function shapeOf(r: BenchRequest): RequestShape {
  const entries = Object.entries(r.headers);
  const header: [string, string] = entries.length ? [entries[entries.length - 1][0], entries[entries.length - 1][1]] : ['X-Bench', '1'];
  const extra = Object.fromEntries(entries.slice(0, -1));
  return { method: r.method, path: r.path, header, extra, ...(r.model ? { model: r.model } : {}) };
}

/** Keys for each role the API-key routes ask for, in a copy of the user's store; the user's store is only read. */
async function makeKeys(m: GatewayModel, dir: string, now: Date): Promise<{ file: string | null; keys: Record<string, string> }> {
  if (!m.auth?.apiKeys) return { file: null, keys: {} };
  const store: KeyFile = await loadKeys(m.auth.apiKeys.file);
  const keys: Record<string, string> = {};
  let n = 0;
  for (const r of m.routes) {
    if (!r.auth?.methods.includes('api_key')) continue;
    const role = r.auth.roles[0] ?? '';
    if (keys[role] !== undefined) continue;
    let name = `gatewayctl-bench-${n++}`;
    while (store.keys.some((k) => k.name === name)) name = `gatewayctl-bench-${n++}`;
    keys[role] = createKey(store, { name, ...(role ? { role } : {}) }, now).key;
  }
  mkdirSync(path.join(dir, 'keys'), { recursive: true });
  const file = path.join(dir, 'keys', path.basename(m.auth.apiKeys.file));
  await saveKeys(file, store);
  return { file, keys };
}

function secretsOf(m: GatewayModel, env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of m.auth?.jwt ?? []) {
    if (p.secretFile) {
      try {
        out[p.name] = readFileSync(p.secretFile, 'utf8').replace(/\r?\n$/, '');
      } catch {
        // compile reported it
      }
    } else if (p.secretEnv && env[p.secretEnv]) out[p.name] = env[p.secretEnv]!;
  }
  return out;
}

export async function benchConfig(opts: ConfigBenchOptions): Promise<ConfigReport> {
  const log = opts.log ?? (() => {});
  const env = opts.env ?? process.env;
  const first = compile(opts.config, { env });
  if (!first.ok || !first.model) throw new BenchRefused(first.diagnostics.filter((d) => d.severity === 'error'));
  const refused = benchRefusals(first.model);
  if (refused.length) throw new BenchRefused(refused);
  for (const n of opts.only ?? []) if (!first.model.routes.some((r) => r.name === n)) throw new Error(`no route named ${n}`);
  for (const n of Object.keys(opts.overrides ?? {})) if (!first.model.routes.some((r) => r.name === n)) throw new Error(`no route named ${n} (--path/--header)`);
  const client = pickClient(opts.client);
  const loc = await findNginx({ nginx: opts.nginx });
  if (opts.instructions && !hasCallgrind()) throw new Error('--instructions needs valgrind (callgrind, callgrind_control) on PATH (Debian: apt-get install valgrind)');

  const work = mkdtempSync(path.join(tmpdir(), 'gatewayctl-bench-c-'));
  chmodSync(work, 0o755);
  workDirs.add(work);
  const started: Running[] = [];
  try {
    const now = new Date();
    const keys = await makeKeys(first.model, work, now);
    const creds: BenchCredentials = { apiKeys: keys.keys, secrets: secretsOf(first.model, env), exp: Math.floor(now.getTime() / 1000) + 24 * 3600 };
    const servers = stubPortCount(first.model);
    const stubPorts: number[] = [];
    for (let i = 0; i < servers; i++) stubPorts.push(await freePort());
    const stubStatus = await freePort();
    const listenerPorts: Record<string, number> = {};
    for (const l of first.model.listeners) listenerPorts[l.name] = await freePort();
    const statusPort = await freePort();
    const baseGet = await freePort();

    started.push(await launchRaw(loc, loc.bin, path.join(work, 'stub'), backendConf(stubPorts, { statusPort: stubStatus }), [...stubPorts, stubStatus]));
    const baseline = await launchRaw(loc, loc.bin, path.join(work, 'baseline'), baselineConf(baseGet, stubPorts[0]), [baseGet]);
    started.push(baseline);

    const adapted: string[] = [];
    const built = compile(opts.config, { env, now, prepare: benchAdapter({ stubPorts, listenerPorts, statusPort, keysFile: keys.file, notes: adapted }) });
    if (!built.ok || !built.model || !built.files) throw new BenchRefused(built.diagnostics.filter((d) => d.severity === 'error'));
    const model = built.model;
    const manifest = JSON.parse(built.files['manifest.json']) as Manifest;
    const dist = path.join(work, 'dist');
    writeBuild(dist, built.files);
    const gwPorts = model.listeners.map((l) => l.port);
    // the pre-flight runs on a probe build of the same config with the JSON access log on, whose
    // `route` field says which route answered: a derived request that another route catches
    // is skipped instead of measuring the wrong route
    const probeBuild = compile(opts.config, { env, now, prepare: benchAdapter({ stubPorts, listenerPorts, statusPort, keysFile: keys.file, probeLog: true }) });
    if (!probeBuild.ok || !probeBuild.files) throw new BenchRefused(probeBuild.diagnostics.filter((d) => d.severity === 'error'));
    const probeDist = path.join(work, 'dist-probe');
    writeBuild(probeDist, probeBuild.files);
    const probe = await launch(loc, loc.bin, path.join(work, 'probe'), path.join(probeDist, 'nginx.conf'), gwPorts, manifest.prefixDirs);
    started.push(probe);
    const accessLog = path.join(work, 'probe', 'logs', 'access.log');
    const logLines = (): string[] => {
      try {
        return readFileSync(accessLog, 'utf8').split('\n').filter(Boolean);
      } catch {
        return [];
      }
    };
    // the route of the first line logged after `before` lines (nginx logs after it answered: wait for it)
    const answeredBy = async (before: number): Promise<string | null> => {
      let lines = logLines();
      for (let i = 0; i < 100 && lines.length <= before; i++) {
        await new Promise((r) => setTimeout(r, 20));
        lines = logLines();
      }
      try {
        return (JSON.parse(lines[before]) as { route?: string }).route ?? null;
      } catch {
        return null;
      }
    };

    // a request per route, and the pre-flight
    type Plan = { row: ConfigRow; shape: RequestShape; port: number };
    const rows: ConfigRow[] = [];
    const plans: Plan[] = [];
    for (const r of model.routes) {
      if (opts.only && !opts.only.includes(r.name)) continue;
      const row: ConfigRow = { route: r.name, method: '', path: '', credential: null, njsCalls: manifest.routes.find((x) => x.name === r.name)?.njsCalls ?? 0, skipped: null, proxied: false, status: null, cpuUs: null, userUs: null, sysUs: null, cpuRatio: null, cpuRatioOfMedians: null, rps: null, requests: 0, upstreamRequests: 0, instructions: null };
      rows.push(row);
      const own = opts.overrides?.[r.name];
      const headers = { ...opts.allRoutes?.headers, ...own?.headers };
      const d = deriveRequest(r, model, creds, { ...(own?.path ? { path: own.path } : {}), ...(Object.keys(headers).length ? { headers } : {}) });
      if (!d.ok) {
        row.skipped = d.reason;
        continue;
      }
      Object.assign(row, { method: d.request.method, path: d.request.path, credential: d.request.credential, proxied: d.request.proxied });
      const port = listenerPorts[r.listeners[0]];
      const shape = shapeOf(d.request);
      const logged = logLines().length;
      try {
        row.status = await once(port, shape);
      } catch (e) {
        row.skipped = `pre-flight request failed: ${(e as Error).message}`;
        continue;
      }
      const reached = await answeredBy(logged);
      if (reached !== r.name) {
        row.skipped = `the request ${row.method} ${row.path} is answered by ${reached === null ? 'no route' : `route ${reached}`}, not this one; pass --path '${r.name}=/…'`;
        continue;
      }
      if (row.status < 200 || row.status > 299) {
        row.skipped = `pre-flight request answered ${row.status}, not 2xx`;
        continue;
      }
      plans.push({ row, shape, port });
    }
    started.splice(started.indexOf(probe), 1);
    await probe.stop();
    const gateway = await launch(loc, loc.bin, path.join(work, 'gateway'), path.join(dist, 'nginx.conf'), gwPorts, manifest.prefixDirs);
    started.push(gateway);
    const gwWorker = await waitForWorker(gateway.proc.pid);
    const baseWorker = await waitForWorker(baseline.proc.pid);

    const loadOpts = (port: number, seconds: number) => ({ port, seconds, connections: opts.connections, threads: opts.threads, workDir: work });
    const baseShapes = { get: { method: 'GET', path: '/', header: ['X-Bench', '1'] as [string, string] }, post: { method: 'POST', path: '/', header: ['X-Bench', '1'] as [string, string] } };
    const needPost = plans.some((p) => hasBody(p.shape.method));
    for (const p of [...plans]) {
      const w = await run(client, p.shape, loadOpts(p.port, opts.warmup));
      log(`warm-up ${p.row.route}: ${Math.round(w.requests / w.seconds)} req/s${w.errors ? `, ${w.errors} failed` : ''}`);
      if (w.errors || !w.requests) {
        p.row.skipped = `${w.errors} of ${w.requests} requests failed during warm-up (rate limited, or not 2xx under load)`;
        plans.splice(plans.indexOf(p), 1);
      }
    }
    await run(client, baseShapes.get, loadOpts(baseGet, opts.warmup));
    if (needPost) await run(client, baseShapes.post, loadOpts(baseGet, opts.warmup));

    type Item = { key: string; shape: RequestShape; port: number; worker: number; row?: ConfigRow };
    const items: Item[] = [
      ...plans.map((p) => ({ key: p.row.route, shape: p.shape, port: p.port, worker: gwWorker, row: p.row })),
      ...(needPost ? [{ key: ' post', shape: baseShapes.post, port: baseGet, worker: baseWorker }] : []),
    ];
    const baseItem: Item = { key: ' get', shape: baseShapes.get, port: baseGet, worker: baseWorker };
    const cpu: Record<string, number[]> = {};
    const rps: Record<string, number[]> = {};
    const ratios: Record<string, number[]> = {};
    const split: Record<string, { user: number[]; sys: number[] }> = {};
    const measure = async (it: Item, round: number): Promise<number> => {
      const s0 = it.row ? await stubRequests(stubStatus) : 0;
      const c0 = cpuNs(it.worker);
      const t0 = cpuSplitUs(it.worker);
      const r = await run(client, it.shape, loadOpts(it.port, opts.seconds));
      const n = Math.max(1, r.requests);
      const us = (cpuNs(it.worker) - c0) / 1e3 / n;
      const t1 = cpuSplitUs(it.worker);
      const sp = (split[it.key] ??= { user: [], sys: [] });
      sp.user.push((t1.user - t0.user) / n);
      sp.sys.push((t1.sys - t0.sys) / n);
      if (it.row) {
        it.row.upstreamRequests += (await stubRequests(stubStatus)) - s0;
        it.row.requests += r.requests;
      }
      if (r.errors) throw new Error(`${it.key.trim()}: ${r.errors} failed requests in round ${round + 1}`);
      if (!r.requests) throw new Error(`${it.key.trim()}: no request completed in round ${round + 1}`);
      (cpu[it.key] ??= []).push(us);
      (rps[it.key] ??= []).push(r.requests / r.seconds);
      log(`round ${round + 1}/${opts.rounds} ${it.key.trim() === 'get' || it.key.trim() === 'post' ? `plain nginx ${it.key.trim().toUpperCase()}` : it.key}: ${us.toFixed(1)} µs/req, ${Math.round(r.requests / r.seconds)} req/s`);
      return us;
    };
    for (let round = 0; round < opts.rounds; round++) {
      const order = items.map((_, i) => items[(i + round) % items.length]);
      const at = round % (order.length + 1);
      const seq = [...order.slice(0, at), baseItem, ...order.slice(at)];
      const got: Record<string, number> = {};
      for (const it of seq) got[it.key] = await measure(it, round);
      for (const p of plans) (ratios[p.row.route] ??= []).push(got[p.row.route] / got[hasBody(p.shape.method) ? ' post' : ' get']);
    }
    const baseGetSpread = spread(cpu[' get']);
    const basePostSpread = needPost ? spread(cpu[' post']) : null;
    for (const p of plans) {
      const c = spread(cpu[p.row.route]);
      p.row.cpuUs = c;
      p.row.userUs = spread(split[p.row.route].user).median;
      p.row.sysUs = spread(split[p.row.route].sys).median;
      p.row.rps = spread(rps[p.row.route]);
      p.row.cpuRatio = spread(ratios[p.row.route]);
      p.row.cpuRatioOfMedians = c.median / (hasBody(p.shape.method) ? basePostSpread! : baseGetSpread).median;
    }

    let baseInstr: number | null = null;
    let baseInstrPost: number | null = null;
    if (opts.instructions) {
      // the gateway and the baseline again, each under callgrind (one process, no worker)
      for (const s of started.splice(1).reverse()) await s.stop();
      const counted = await countInstructions(loc, work, dist, manifest.prefixDirs, gwPorts, baseGet, stubPorts[0], plans, opts.instructions.requests, log);
      baseInstr = counted.baseline;
      baseInstrPost = counted.baselinePost;
      for (const p of plans) {
        const n = counted.routes[p.row.route];
        if (n !== undefined) p.row.instructions = { perRequest: n, ratio: n / (hasBody(p.shape.method) ? counted.baselinePost! : counted.baseline) };
      }
    }

    const notes = ['upstream servers → a stub `return 200` nginx; listeners → 127.0.0.1; one worker process; logs, temp and cache inside a temporary prefix', ...adapted];
    if (keys.file) notes.push('API keys made in a temporary copy of the key store (the store itself is only read)');
    return {
      config: opts.config,
      client,
      seconds: opts.seconds,
      rounds: opts.rounds,
      connections: opts.connections,
      threads: opts.threads,
      cpus: availableParallelism(),
      date: new Date().toISOString(),
      baseline: { get: baseGetSpread, post: basePostSpread, instructions: baseInstr, instructionsPost: baseInstrPost, getUserUs: spread(split[' get'].user).median, getSysUs: spread(split[' get'].sys).median },
      rows,
      notes,
    };
  } finally {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
    workDirs.delete(work);
  }
}

/** Whether valgrind's callgrind and callgrind_control are on PATH. */
export function hasCallgrind(): boolean {
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
    execFileSync('callgrind_control', ['-h'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// A wrapper running the nginx binary under callgrind in one process (master_process off):
// callgrind_control reaches only the process valgrind started. The project runtime's bin/nginx
// is itself a wrapper (`exec <real> "$@"`): callgrind runs the real binary.
function callgrindBin(loc: NginxLocation, dir: string): string {
  let real = loc.bin;
  try {
    real = readFileSync(loc.bin, 'utf8').match(/^exec (.*) "\$@"$/m)?.[1] ?? loc.bin;
  } catch {
    // a binary
  }
  mkdirSync(dir, { recursive: true });
  const bin = path.join(dir, 'nginx-callgrind');
  const out = path.join(dir, 'callgrind.%p');
  writeFileSync(
    bin,
    [
      '#!/bin/bash',
      `case "$1" in -V|-v) exec ${real} "$@";; esac`,
      'args=(); g="master_process off;"',
      'while [ $# -gt 0 ]; do if [ "$1" = -g ]; then g="$g $2"; shift 2; else args+=("$1"); shift; fi; done',
      `exec valgrind --tool=callgrind --quiet --callgrind-out-file=${out} ${real} -g "$g" "\${args[@]}"`,
      '',
    ].join('\n'),
  );
  chmodSync(bin, 0o755);
  return bin;
}

async function countInstructions(
  loc: NginxLocation,
  work: string,
  dist: string,
  dirs: string[],
  gwPorts: number[],
  basePort: number,
  stubPort: number,
  plans: { row: ConfigRow; shape: RequestShape; port: number }[],
  n: number,
  log: (l: string) => void,
): Promise<{ baseline: number; baselinePost: number | null; routes: Record<string, number> }> {
  const cgDir = path.join(work, 'callgrind');
  const bin = callgrindBin(loc, cgDir);
  const baseline = await launchRaw(loc, bin, path.join(work, 'cg-baseline'), baselineConf(basePort, stubPort), [basePort]);
  const gateway = await launch(loc, bin, path.join(work, 'cg-gateway'), path.join(dist, 'nginx.conf'), gwPorts, dirs).catch(async (e) => {
    await baseline.stop();
    throw e;
  });
  try {
    const count = async (pid: number, port: number, shape: RequestShape, name: string): Promise<number> => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const send = () =>
        new Promise<void>((resolve, reject) => {
          const body = hasBody(shape.method) ? JSON.stringify({ model: shape.model ?? 'gpt-4o', user: 'bench', messages: [{ role: 'user', content: 'hi' }] }) : undefined;
          const headers: Record<string, string> = { ...shape.extra, [shape.header[0]]: shape.header[1] };
          if (body) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) });
          const req = http.request({ host: '127.0.0.1', port, method: shape.method, path: shape.path, headers, agent }, (res) => {
            res.resume();
            res.on('end', () => ((res.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`${name}: HTTP ${res.statusCode} under callgrind`))));
          });
          req.on('error', reject);
          req.end(body);
        });
      for (let i = 0; i < 50; i++) await send();
      execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'ignore', timeout: 120_000 });
      for (let i = 0; i < n; i++) await send();
      execFileSync('callgrind_control', ['-d', name.replace(/[^a-z0-9_-]/gi, '_'), String(pid)], { stdio: 'ignore', timeout: 120_000 });
      agent.destroy();
      const file = readdirSync(cgDir)
        .filter((f) => f.startsWith(`callgrind.${pid}.`))
        .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()))
        .at(-1);
      if (!file) throw new Error(`${name}: no callgrind dump`);
      const total = Number(/^(?:summary|totals): (\d+)/m.exec(readFileSync(path.join(cgDir, file), 'utf8'))?.[1] ?? 0);
      log(`${name}: ${Math.round(total / n)} instructions/request`);
      return total / n;
    };
    const routes: Record<string, number> = {};
    const base = await count(baseline.proc.pid, basePort, { method: 'GET', path: '/', header: ['X-Bench', '1'] }, 'plain nginx GET');
    const post = plans.some((p) => hasBody(p.shape.method)) ? await count(baseline.proc.pid, basePort, { method: 'POST', path: '/', header: ['X-Bench', '1'] }, 'plain nginx POST') : null;
    for (const p of plans) routes[p.row.route] = await count(gateway.proc.pid, p.port, p.shape, p.row.route);
    return { baseline: base, baselinePost: post, routes };
  } finally {
    await gateway.stop();
    await baseline.stop();
  }
}
