// Instructions per request in the nginx worker, counted by valgrind's callgrind: the library
// behind scripts/bench/instructions.ts and the guard tests/bench/instructions.test.ts. See the
// script for what is measured.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findNginx } from '../../src/runtime/nginx/index.ts';
import { startGateway, startRawNginx, stopAllGateways, type Gateway } from '../../tests/support/nginx.ts';
import { freePort } from '../../tests/support/ports.ts';
import { BASELINE, SCENARIOS } from './lib.ts';
import { buildProductFor, HEALTH_ROUTES, hsToken, routeOfPath, writeCredentials } from './product.ts';
import { benchBackend, baselineConf, referenceConf } from './reference.ts';

// the product route of each scenario path (scripts/bench/product.ts)
const root = path.resolve(import.meta.dirname, '../..');

export interface InstructionRow {
  name: string;
  label: string;
  /** instructions per request in the worker */
  perRequest: number;
  /** ratio to the plain nginx proxy */
  ratio: number;
  /** the callgrind dump (self costs by function, for --top) */
  file: string;
}

export interface InstructionOptions {
  requests: number;
  /** scenarios besides the baseline and gw_plain; all when absent (the first-sight rows, whose
   *  every request signs a new token, only when named) */
  only?: string[];
  /** each gatewayctl scenario on a gateway of its own route */
  solo?: boolean;
  /** gateways with `metrics:` (the log-phase call on every route) */
  metrics?: boolean;
  /** gateways with `admin_api:` (API keys through gateway.apiKeyLive: runtime keys on) */
  liveKeys?: boolean;
  /** gateways with `auth.jwt_cache: false` (what the verified-token cache saves) */
  noJwtCache?: boolean;
  log?: (line: string) => void;
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

// A wrapper runtime: bin/nginx runs the project's nginx under callgrind; modules/ beside it.
// One process (master_process off): callgrind_control reaches only the process valgrind
// started, not a forked worker.
// The runtime measured is the one findNginx() picks: GATEWAYCTL_NGINX (e.g. the provisioned
// .runtime-next/bin/nginx), else the project's .runtime/.
async function callgrindRuntime(work: string): Promise<string> {
  const rt = path.join(work, 'cg-runtime');
  const { bin: wrapper, modulesDir } = await findNginx();
  mkdirSync(path.join(rt, 'bin'), { recursive: true });
  if (modulesDir && !existsSync(path.join(rt, 'modules'))) symlinkSync(modulesDir, path.join(rt, 'modules'));
  const real = readFileSync(wrapper, 'utf8').match(/^exec (.*) "\$@"$/m)?.[1];
  if (!real) throw new Error(`${wrapper} is not a provisioned wrapper (scripts/provision-runtime.sh)`);
  const out = path.join(work, 'callgrind.%p');
  const bin = path.join(rt, 'bin', 'nginx');
  // nginx keeps only the last -g: add master_process off to the one the runner passes
  const script = [
    '#!/bin/bash',
    `case "$1" in -V|-v) exec ${real} "$@";; esac`,
    'args=(); g="master_process off;"',
    'while [ $# -gt 0 ]; do if [ "$1" = -g ]; then g="$g $2"; shift 2; else args+=("$1"); shift; fi; done',
    `exec valgrind --tool=callgrind --quiet --callgrind-out-file=${out} ${real} -g "$g" "\${args[@]}"`,
  ];
  writeFileSync(bin, script.join('\n') + '\n');
  chmodSync(bin, 0o755);
  return bin;
}

// master_process off: the process the harness started serves the requests
const workerPid = (gw: Gateway): number => gw.pid;

async function send(agent: http.Agent, port: number, method: string, p: string, headers: Record<string, string>, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers: body ? { ...headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) } : headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function callgrindControl(args: string[]): void {
  execFileSync('callgrind_control', args, { stdio: 'ignore', timeout: 120_000 });
}

/** Self instructions by function in a dump (fn= lines and their cost lines). */
export function selfCosts(file: string): Map<string, number> {
  const names = new Map<string, string>();
  const costs = new Map<string, number>();
  let fn = '';
  let inCall = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    // names are compressed: "(id) name" the first time an id appears, in fn= or cfn= lines
    const named = line.match(/^c?fn=\((\d+)\) (.*)$/);
    if (named) names.set(named[1], named[2]);
    const m = line.match(/^fn=\((\d+)\)/);
    if (m) {
      fn = names.get(m[1]) ?? m[1];
      inCall = false;
      continue;
    }
    if (line.startsWith('calls=')) {
      inCall = true; // the next cost line is inclusive cost of the call
      continue;
    }
    const c = line.match(/^[+-]?\d+ (\d+)$/) ?? line.match(/^\* (\d+)$/);
    if (c && fn) {
      if (inCall) inCall = false;
      else costs.set(fn, (costs.get(fn) ?? 0) + Number(c[1]));
    }
  }
  return costs;
}

/**
 * A dist whose counting log (metrics) is counted only when scraped: callgrind counts a window
 * of wall time, and under valgrind the periodic count (every 250 ms) would land in it by the
 * clock, not by the requests (a 60 ms request would pay for more runs than a fast one). The
 * scrape at the end of each window counts every line the window wrote instead, and the cost of
 * a scrape with nothing to count is subtracted.
 */
function untimedCount(dist: string): string {
  const file = path.join(dist, 'conf.d', '40-servers.conf');
  const text = readFileSync(file, 'utf8');
  if (text.includes('js_periodic gateway.metricsDrain interval=')) {
    writeFileSync(file, text.replace(/js_periodic gateway\.metricsDrain interval=\w+/, 'js_periodic gateway.metricsDrain interval=3600s'));
  }
  return dist;
}

const totalOf = (file: string): number => {
  const m = readFileSync(file, 'utf8').match(/^(?:summary|totals): (\d+)/m);
  return m ? Number(m[1]) : 0;
};

export async function countInstructions(opts: InstructionOptions): Promise<{ rows: InstructionRow[]; work: string }> {
  const N = opts.requests;
  const only = opts.only;
  const solo = !!opts.solo;
  const work = await mkdtemp(path.join(tmpdir(), 'gatewayctl-cg-'));
  const nginx = await callgrindRuntime(work);
  try {
    const [backA, backB, basePort, refPort, gwPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const backend = benchBackend([backA, backB]);
    await startRawNginx(backend.conf, [backA, backB], { files: backend.files });
    const slow = { nginx, timeoutMs: 120_000 };
    const baseline = await startRawNginx(baselineConf(basePort, backA), [basePort], slow);
    const ref = referenceConf(refPort, backA);
    const reference = await startRawNginx(ref.conf, [refPort], { files: ref.files, ...slow });
    const creds = await writeCredentials(work);
    // the state-plane rows need health-checked upstreams, whose probes run in the measured
    // worker (counted in every row's window): only when such a row is asked for
    const wantsHealth = !only || only.some((n) => n.startsWith('gw_health')) || !!opts.liveKeys;
    const dist = untimedCount(await buildProductFor(work, null, gwPort, [backA, backB], { jwtCache: !opts.noJwtCache, metrics: opts.metrics, liveKeys: opts.liveKeys, health: wantsHealth }));
    const product = await startGateway({ distDir: dist, ports: [gwPort], ...slow });
    const targets = { baseline: { gw: baseline, port: basePort }, reference: { gw: reference, port: refPort }, product: { gw: product, port: gwPort } };
    // --solo: a gateway of its own per route, built in its own directory; rows of one route
    // (an API key with and without an id) share it
    const soloByRoute: Record<string, { gw: Gateway; port: number }> = {};
    const soloTarget = async (routePath: string): Promise<{ gw: Gateway; port: number }> => {
      const route = routeOfPath(routePath);
      if (soloByRoute[route]) return soloByRoute[route];
      // rows of one route are next to each other: the previous route's gateway is done
      for (const k of Object.keys(soloByRoute)) {
        await soloByRoute[k].gw.stop();
        delete soloByRoute[k];
      }
      const port = await freePort();
      const dist = untimedCount(await buildProductFor(work, [route], port, [backA, backB], { jwtCache: !opts.noJwtCache, metrics: opts.metrics, liveKeys: opts.liveKeys, health: HEALTH_ROUTES.includes(route) || !!opts.liveKeys }));
      soloByRoute[route] = { gw: await startGateway({ distDir: dist, ports: [port], ...slow }), port };
      return soloByRoute[route];
    };
    const allCreds = { ...creds, refHsToken: await hsToken(Math.floor(Date.now() / 1000) + 6 * 3600) };

    const rows: Omit<InstructionRow, 'ratio'>[] = [];
    for (const s of SCENARIOS) {
      if (only && s.name !== BASELINE && s.name !== 'gw_plain' && !only.includes(s.name)) continue;
      // a first-sight row runs only when named (its every request, warm-up included, sends a
      // token signed for it alone)
      if (s.freshTokens && !only) continue;
      const t = solo && s.target === 'product' && s.name !== 'gw_plain' ? await soloTarget(s.shape(allCreds).path) : targets[s.target];
      const shape = s.shape(allCreds);
      const headers = { [shape.header[0]]: shape.header[1] };
      const tokens = s.freshTokens ? await creds.fresh(s.freshTokens, N + 50) : null;
      let sent = 0;
      const next = (): Record<string, string> => (tokens ? { Authorization: `Bearer ${tokens[sent++]}` } : headers);
      const body = shape.method === 'POST' ? JSON.stringify({ model: 'gpt-4o', user: 'bench-user', messages: [{ role: 'user', content: 'hi' }] }) : undefined;
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const pid = workerPid(t.gw);
      for (let i = 0; i < 50; i++) {
        const status = await send(agent, t.port, shape.method, shape.path, next(), body);
        if (status !== 200) throw new Error(`${s.name}: HTTP ${status}`);
      }
      // with metrics, the counting log's lines are counted by a scrape at the end of the window
      // (untimedCount): the warm-up's lines first, outside it
      const counting = !!opts.metrics && s.target === 'product';
      const scrape = async () => {
        const status = await send(agent, t.port, 'GET', '/metrics', {});
        if (status !== 200) throw new Error(`${s.name}: /metrics HTTP ${status}`);
      };
      if (counting) await scrape();
      const dump = (label: string): string => {
        const before = new Set(readdirSync(work));
        callgrindControl(['-d', label, String(pid)]);
        const file = readdirSync(work).find((f) => f.startsWith(`callgrind.${pid}.`) && !before.has(f)) ?? readdirSync(work).filter((f) => f.startsWith(`callgrind.${pid}.`)).sort().at(-1);
        if (!file) throw new Error(`${s.name}: no callgrind dump`);
        return path.join(work, file);
      };
      callgrindControl(['-z', String(pid)]);
      for (let i = 0; i < N; i++) await send(agent, t.port, shape.method, shape.path, next(), body);
      if (counting) await scrape();
      const file = dump(s.name);
      let total = totalOf(file);
      if (counting) {
        // less what a scrape costs with nothing to count (the exposition itself)
        callgrindControl(['-z', String(pid)]);
        await scrape();
        total -= totalOf(dump(`${s.name}-scrape`));
      }
      agent.destroy();
      // a solo gateway stops with the others at the end (rows of one route share it)
      rows.push({ name: s.name, label: s.label, perRequest: total / N, file });
      opts.log?.(`${s.name}: ${Math.round(rows.at(-1)!.perRequest)} instructions/request`);
    }
    const base = rows.find((r) => r.name === BASELINE)!.perRequest;
    return { rows: rows.map((r) => ({ ...r, ratio: r.perRequest / base })), work };
  } finally {
    await stopAllGateways();
  }
}
