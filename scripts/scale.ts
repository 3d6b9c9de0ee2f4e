// Scale figures: generates, in a temp dir, a 100k-key API key store and a 1,000-route /
// 200-upstream gateway.yaml, then prints for `node bin/gatewayctl.js build` (CLI start
// included) the wall time, CPU time (user + system: less sensitive to other load) and max RSS
// (GNU time at /usr/bin/time when present), and for the
// 100k-key build `nginx -t` and reload times on the provisioned nginx.
//
//   npx tsx scripts/scale.ts [--keys N] [--routes N] [--upstreams N] [--runs N] [--no-nginx]
//                            [--no-per-request] [--requests N] [--rounds N] [--keep]
//
// Last, the per-request cost of an API key with N keys against 10 keys: two gateways (one
// nginx worker each), each with a plain proxied route as its own baseline, nginx worker CPU
// per request from /proc as scripts/bench.ts measures it, interleaved rounds, medians.
//
// The CLI bundle is used as is: run `npm run build:cli` first after editing src/.
import { execFileSync, spawnSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateScaleKeys, scaleConfig } from './scale-fixtures.ts';
import { childPids, findNginx } from '../src/runtime/nginx/index.ts';
import { startGateway, type Gateway } from '../tests/support/nginx.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const nKeys = opt('--keys', 100_000);
const nRoutes = opt('--routes', 1000);
const nUpstreams = opt('--upstreams', 200);
const runs = opt('--runs', 3);
const withNginx = !args.includes('--no-nginx');
const keep = args.includes('--keep');
const perRequest = !args.includes('--no-per-request');

const TIME = '/usr/bin/time';
const haveTime = spawnSync(TIME, ['-f', '%M', 'true']).status === 0;
const cli = path.join(root, 'bin', 'gatewayctl.js');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** wall ms and max RSS MiB of one run of argv (RSS from GNU time, else null). */
function measure(argv: string[], cwd: string): { ms: number; rssMiB: number | null; cpuMs: number | null } {
  const t0 = process.hrtime.bigint();
  const r = haveTime
    ? spawnSync(TIME, ['-f', '__RSS %M %U %S', ...argv], { cwd, encoding: 'utf8' })
    : spawnSync(argv[0], argv.slice(1), { cwd, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const m = /__RSS (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  return { ms, rssMiB: m ? Number(m[1]) / 1024 : null, cpuMs: m ? (Number(m[2]) + Number(m[3])) * 1000 : null };
}

function report(label: string, argv: string[], cwd: string): boolean {
  let xs: { ms: number; rssMiB: number | null; cpuMs: number | null }[];
  try {
    xs = Array.from({ length: runs }, () => measure(argv, cwd));
  } catch (e) {
    console.log(`${label.padEnd(34)} FAILED: ${(e as Error).message.split('\n').filter(Boolean).slice(0, 3).join(' | ')}`);
    return false;
  }
  const rss = xs.map((x) => x.rssMiB).filter((x): x is number => x !== null);
  const cpu = xs.map((x) => x.cpuMs).filter((x): x is number => x !== null);
  console.log(
    `${label.padEnd(34)} wall ms median ${median(xs.map((x) => x.ms)).toFixed(0)} (min ${Math.min(...xs.map((x) => x.ms)).toFixed(0)}, max ${Math.max(...xs.map((x) => x.ms)).toFixed(0)})` +
      (rss.length ? `  CPU ms median ${median(cpu).toFixed(0)}  max RSS ${Math.max(...rss).toFixed(0)} MiB` : '  max RSS n/a (no /usr/bin/time)'),
  );
  return true;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** The per-request scenario: a plain proxied route and an API-key route, upstream `return 200` inside the same nginx. */
function benchConfig(gw: number, up: number): string {
  return `version: 1
global:
  worker_processes: 1
  status: false
  access_log: false
  unsafe_nginx_http: "server { listen 127.0.0.1:${up}; access_log off; location / { return 200 ok; } }"
listeners:
  - { name: public, address: 127.0.0.1, port: ${gw} }
upstreams:
  rr: { servers: ["127.0.0.1:${up}"], keepalive: 32 }
auth:
  api_keys: { file: keys.yaml }
routes:
  - { name: plain, match: { exact: /plain }, upstream: rr }
  - { name: apikey, match: { exact: /apikey }, upstream: rr, auth: api_key }
`;
}

/** utime + stime of a process in clock ticks (USER_HZ = 100), as scripts/bench.ts measures. */
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

/** n keep-alive GETs, 8 at a time; every answer must be 200. */
async function drive(port: number, p: string, headers: Record<string, string>, n: number, agent: Agent): Promise<void> {
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: p, agent, headers }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${p}: HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  const worker = async () => {
    while (next++ < n) await one();
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'gatewayctl-scale-'));
try {
  console.log(`scratch: ${dir}  (${os.cpus().length} CPUs, node ${process.version})`);
  // 1. keys at scale
  const port = await freePort();
  const keysDir = path.join(dir, 'keys');
  const t0 = Date.now();
  const { sample } = generateScaleKeys(path.join(keysDir, 'keys.yaml'), nKeys);
  writeFileSync(path.join(keysDir, 'gateway.yaml'), scaleConfig({ routes: 1, upstreams: 1, port, apiKeys: true }));
  const size = readFileSync(path.join(keysDir, 'keys.yaml')).length;
  console.log(`generated ${nKeys} keys (${(size / 1048576).toFixed(1)} MiB) in ${Date.now() - t0} ms`);
  const keysBuilt = report(`build, ${nKeys} keys`, ['node', cli, 'build', '-c', 'gateway.yaml', '-o', 'dist'], keysDir);

  // 2. routes at scale
  const routesDir = path.join(dir, 'routes');
  execFileSync('mkdir', ['-p', routesDir]);
  writeFileSync(path.join(routesDir, 'gateway.yaml'), scaleConfig({ routes: nRoutes, upstreams: nUpstreams, port, apiKeys: false }));
  report(`build, ${nRoutes} routes/${nUpstreams} upstreams`, ['node', cli, 'build', '-c', 'gateway.yaml', '-o', 'dist'], routesDir);

  // 3. nginx -t and reload with the 100k-key build, on the test harness's prefix layout
  if (withNginx && keysBuilt) {
    const gw = await startGateway({ distDir: path.join(keysDir, 'dist'), ports: [port], timeoutMs: 60_000 });
    try {
      const loc = await findNginx({});
      report(`nginx -t, ${nKeys} keys`, [loc.bin, '-p', gw.prefix, '-c', gw.confPath, '-t', '-q'], gw.prefix);
      const reloads: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = process.hrtime.bigint();
        await gw.reload();
        reloads.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      console.log(`${`nginx reload, ${nKeys} keys`.padEnd(34)} ms to new workers median ${median(reloads).toFixed(0)} (min ${Math.min(...reloads).toFixed(0)}, max ${Math.max(...reloads).toFixed(0)})`);
      const r = await fetch(gw.url('/r0/x'), { headers: { 'x-api-key': sample.key } });
      console.log(`a generated key authenticates: ${r.status !== 401 && r.status !== 403 ? 'yes' : 'NO'} (HTTP ${r.status})`);
    } finally {
      await gw.stop();
    }
  }

  // 4. per-request cost with 100k keys vs 10 keys: two gateways (one nginx worker each), each
  // with a plain proxied route as its own baseline, measured in interleaved rounds
  if (withNginx && perRequest) {
    const reqs = opt('--requests', 20000);
    const rounds = opt('--rounds', 3);
    const gws: { label: string; gw: Gateway; key: string; port: number }[] = [];
    try {
      for (const n of [10, nKeys]) {
        const d = path.join(dir, `bench-${n}`);
        const { sample: sk } = generateScaleKeys(path.join(d, 'keys.yaml'), n);
        const gwPort = await freePort();
        const upPort = await freePort();
        writeFileSync(path.join(d, 'gateway.yaml'), benchConfig(gwPort, upPort));
        measure(['node', cli, 'build', '-c', 'gateway.yaml', '-o', 'dist'], d);
        gws.push({ label: `${n} keys`, gw: await startGateway({ distDir: path.join(d, 'dist'), ports: [gwPort], timeoutMs: 60_000 }), key: sk.key, port: gwPort });
      }
      const agent = new Agent({ keepAlive: true, maxSockets: 8 });
      const cpu: Record<string, number[]> = {};
      for (const g of gws) {
        await drive(g.port, '/plain', {}, 500, agent);
        await drive(g.port, '/apikey', { 'X-API-Key': g.key }, 500, agent);
      }
      for (let round = 0; round < rounds; round++) {
        for (const g of gws) {
          const worker = childPids(g.gw.pid)[0];
          for (const [name, p, h] of [
            ['plain', '/plain', {}],
            ['api_key', '/apikey', { 'X-API-Key': g.key }],
          ] as const) {
            const c0 = cpuTicks(worker);
            await drive(g.port, p, h, reqs, agent);
            (cpu[`${g.label} ${name}`] ??= []).push((((cpuTicks(worker) - c0) / 100) * 1e6) / reqs);
          }
        }
      }
      agent.destroy();
      console.log(`per-request nginx worker CPU (1 worker, ${reqs} requests x ${rounds} rounds, median (min-max); /proc ticks are 10 ms: ±0.5 µs at 20,000 requests):`);
      for (const g of gws) {
        const plain = median(cpu[`${g.label} plain`]);
        const key = median(cpu[`${g.label} api_key`]);
        const range = (xs: number[]) => `${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}`;
        console.log(
          `  ${g.label.padEnd(12)} plain ${plain.toFixed(1)} µs (${range(cpu[`${g.label} plain`])})  api_key ${key.toFixed(1)} µs (${range(cpu[`${g.label} api_key`])})  (+${(key - plain).toFixed(1)} µs, ${(key / plain).toFixed(2)}x plain)`,
        );
      }
    } finally {
      for (const g of gws) await g.gw.stop();
    }
  }
} finally {
  if (keep) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
