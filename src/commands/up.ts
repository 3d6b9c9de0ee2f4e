// `gatewayctl up`: build and run nginx in the foreground on the output, with a prefix
// under .gatewayctl/run; logs go to the terminal; Ctrl-C stops everything cleanly.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, closeSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UnsafeReplaceError } from '../build/guard.ts';
import { writeBuild } from '../build/write.ts';
import { startDemoUpstreams, type DemoServer } from '../demo/upstreams.ts';
import { findNginx, preparePrefix, startNginx, stopNginx, testConfig, NginxNotFoundError, type NginxLocation } from '../runtime/nginx/index.ts';
import { PROJECT_ROOT } from '../version.ts';
import { compileForTarget, outputFiles, printDiagnostics } from './build.ts';

export const help = `
Examples:
  $ gatewayctl up --demo                      # bundled gateway.yaml + demo upstreams on loopback
  $ gatewayctl up -c gateway.yaml -o dist     # your config, your upstreams
  $ curl -s localhost:8080/v1/models          # (demo) through the gateway

The nginx prefix (logs, pid, temp, cache) lives in .gatewayctl/run/. When no nginx is found,
the project runtime is provisioned first (scripts/provision-runtime.sh).`;

/**
 * `<prefix>/gatewayctl-up.json`: what the running `up` serves ({ pid, conf, config }), so
 * `gatewayctl tls issue|renew` can test and reload that configuration. Removed on stop.
 */
export const UP_RECORD = 'gatewayctl-up.json';

export interface UpRecord {
  pid: number;
  conf: string; // absolute nginx.conf nginx runs with
  config: string; // absolute gateway.yaml it was built from
}

export function readUpRecord(prefix: string): UpRecord | null {
  try {
    const r = JSON.parse(readFileSync(path.join(prefix, UP_RECORD), 'utf8')) as UpRecord;
    return Number.isInteger(r.pid) && typeof r.conf === 'string' && typeof r.config === 'string' ? r : null;
  } catch {
    return null;
  }
}

export interface UpOptions {
  config: string;
  out: string;
  demo?: boolean;
  nginx?: string;
  prefix?: string;
}

async function nginxOrProvision(flag?: string): Promise<NginxLocation> {
  try {
    return await findNginx({ nginx: flag });
  } catch (e) {
    if (!(e instanceof NginxNotFoundError) || flag) throw e;
    process.stdout.write('no nginx found: provisioning the project runtime (nginx + njs)…\n');
    const r = spawnSync('bash', [path.join(PROJECT_ROOT, 'scripts/provision-runtime.sh')], { stdio: 'inherit' });
    if (r.status !== 0) throw e;
    return findNginx({});
  }
}

/** Follow a log file from its current end, printing each new line. */
function follow(file: string, print: (line: string) => void): () => void {
  let pos = existsSync(file) ? statSync(file).size : 0;
  let rest = '';
  const timer = setInterval(() => {
    if (!existsSync(file)) return;
    const size = statSync(file).size;
    if (size < pos) pos = 0;
    if (size === pos) return;
    const fd = openSync(file, 'r');
    const buf = Buffer.alloc(size - pos);
    readSync(fd, buf, 0, buf.length, pos);
    closeSync(fd);
    pos = size;
    const text = rest + buf.toString('utf8');
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) if (l) print(l);
  }, 200);
  return () => clearInterval(timer);
}

/**
 * Started as root, nginx runs its workers as `nobody`; they must traverse every directory
 * above the prefix to use the cache and temp directories (a 0700 mkdtemp parent breaks
 * caching with "Permission denied").
 */
function warnUnreachablePrefix(prefix: string): void {
  if (process.getuid?.() !== 0) return;
  for (let dir = prefix; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      process.stderr.write(`warning: nginx workers (user nobody) cannot enter ${dir}; caching and request buffering will fail. Fix: chmod o+x ${dir}, or use another --prefix\n`);
      return;
    }
  }
}

export async function run(opts: UpOptions): Promise<number> {
  const loc = await nginxOrProvision(opts.nginx);
  const r = await compileForTarget({ config: opts.config, nginx: loc.bin });
  printDiagnostics(r);
  if (!r.ok || !r.files || !r.model) return 1;
  try {
    writeBuild(opts.out, outputFiles(r));
  } catch (e) {
    if (!(e instanceof UnsafeReplaceError)) throw e;
    process.stderr.write(`${e.message}\n(choose another -o)\n`);
    return 1;
  }
  const prefix = path.resolve(opts.prefix ?? '.gatewayctl/run');
  mkdirSync(prefix, { recursive: true });
  await preparePrefix(prefix, loc.modulesDir);
  warnUnreachablePrefix(prefix);
  const conf = path.resolve(opts.out, 'nginx.conf');
  const t = await testConfig(loc, prefix, conf);
  if (!t.ok) {
    process.stderr.write(`nginx -t failed:\n${t.output}\n`);
    return 1;
  }
  let demo: DemoServer[] = [];
  if (opts.demo) {
    demo = await startDemoUpstreams();
    process.stdout.write(`demo upstreams: ${demo.map((s) => `${s.name} 127.0.0.1:${s.port}`).join(', ')}\n`);
  }
  const proc = await startNginx(loc, prefix, conf, { foreground: true, stdio: 'inherit' });
  const record: UpRecord = { pid: proc.pid, conf, config: path.resolve(opts.config) };
  writeFileSync(path.join(prefix, UP_RECORD), `${JSON.stringify(record, null, 2)}\n`);
  const m = r.model;
  const stopLog = m.global.accessLog ? follow(path.join(prefix, m.global.accessLog.path), (l) => process.stdout.write(`access ${l}\n`)) : () => {};
  const stopErr = follow(path.join(prefix, m.global.errorLog.path), (l) => process.stderr.write(`${l}\n`));
  for (const l of m.listeners) {
    process.stdout.write(`gateway listening: ${l.tls ? 'https' : 'http'}://${l.address ?? '127.0.0.1'}:${l.port}/ (listener ${l.name})\n`);
  }
  process.stdout.write(`nginx pid ${proc.pid}, prefix ${prefix}; Ctrl-C to stop\n`);
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping…\n');
    await stopNginx(prefix, { graceful: true }).catch(() => undefined);
    rmSync(path.join(prefix, UP_RECORD), { force: true });
    stopLog();
    stopErr();
    await Promise.all(demo.map((s) => s.close()));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  const exit = await proc.exited!;
  await shutdown();
  return stopping && (exit.code === 0 || exit.signal) ? 0 : (exit.code ?? 1);
}
