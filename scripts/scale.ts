// Scale figures: generates, in a temp dir, a 100k-key API key store and a 1,000-route /
// 200-upstream gateway.yaml, then prints for `node bin/gatewayctl.js build` (CLI start
// included) the wall time and max RSS (GNU time at /usr/bin/time when present), and for the
// 100k-key build `nginx -t` and reload times on the provisioned nginx.
//
//   npx tsx scripts/scale.ts [--keys N] [--routes N] [--upstreams N] [--runs N] [--no-nginx] [--keep]
//
// The CLI bundle is used as is: run `npm run build:cli` first after editing src/.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateScaleKeys, scaleConfig } from './scale-fixtures.ts';
import { findNginx } from '../src/runtime/nginx/index.ts';
import { startGateway } from '../tests/support/nginx.ts';

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

const TIME = '/usr/bin/time';
const haveTime = spawnSync(TIME, ['-f', '%M', 'true']).status === 0;
const cli = path.join(root, 'bin', 'gatewayctl.js');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** wall ms and max RSS MiB of one run of argv (RSS from GNU time, else null). */
function measure(argv: string[], cwd: string): { ms: number; rssMiB: number | null } {
  const t0 = process.hrtime.bigint();
  const r = haveTime
    ? spawnSync(TIME, ['-f', '__RSS %M', ...argv], { cwd, encoding: 'utf8' })
    : spawnSync(argv[0], argv.slice(1), { cwd, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const m = /__RSS (\d+)/.exec(r.stderr);
  return { ms, rssMiB: m ? Number(m[1]) / 1024 : null };
}

function report(label: string, argv: string[], cwd: string): boolean {
  let xs: { ms: number; rssMiB: number | null }[];
  try {
    xs = Array.from({ length: runs }, () => measure(argv, cwd));
  } catch (e) {
    console.log(`${label.padEnd(34)} FAILED: ${(e as Error).message.split('\n').filter(Boolean).slice(0, 3).join(' | ')}`);
    return false;
  }
  const rss = xs.map((x) => x.rssMiB).filter((x): x is number => x !== null);
  console.log(
    `${label.padEnd(34)} wall ms median ${median(xs.map((x) => x.ms)).toFixed(0)} (min ${Math.min(...xs.map((x) => x.ms)).toFixed(0)}, max ${Math.max(...xs.map((x) => x.ms)).toFixed(0)})` +
      (rss.length ? `  max RSS ${Math.max(...rss).toFixed(0)} MiB` : '  max RSS n/a (no /usr/bin/time)'),
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
} finally {
  if (keep) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
