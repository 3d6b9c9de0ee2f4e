// Private helper for the njs integration tests: runs the project nginx runtime on a
// prepared prefix directory (files given as relative path -> text) and stops it after.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/njs/bundle.ts';

export const NGINX_BIN = path.join(PROJECT_ROOT, '.runtime/bin/nginx');
export const NJS_MODULE_SO = path.join(PROJECT_ROOT, '.runtime/modules/ngx_http_js_module.so');
export const FIXTURES = path.join(PROJECT_ROOT, 'tests/njs/fixtures');

export interface RunningNginx {
  prefix: string;
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

// When the tests run as root, nginx workers run as `nobody`: the prefix must be
// traversable and the temp directories writable for them.
export async function makePrefix(): Promise<string> {
  const prefix = await mkdtemp(path.join(os.tmpdir(), 'gw-njs-'));
  await chmod(prefix, 0o755);
  for (const d of ['tmp', 'tmp/body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi', 'njs', 'conf.d', 'html']) {
    await mkdir(path.join(prefix, d), { recursive: true });
    await chmod(path.join(prefix, d), d.startsWith('tmp') ? 0o777 : 0o755);
  }
  return prefix;
}

export async function writeFiles(prefix: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(prefix, rel)), { recursive: true });
    await writeFile(path.join(prefix, rel), text);
  }
}

export async function fixture(name: string, vars: Record<string, string | number>): Promise<string> {
  let text = await readFile(path.join(FIXTURES, name), 'utf8');
  for (const [k, v] of Object.entries(vars)) text = text.split(`__${k}__`).join(String(v));
  const left = /__[A-Z_]+__/.exec(text);
  if (left) throw new Error(`fixture ${name}: unreplaced placeholder ${left[0]}`);
  return text;
}

function waitForPort(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`nginx exited with ${child.exitCode}`));
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve();
      });
      s.on('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`nginx did not listen on ${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

export async function startNginx(prefix: string, port: number): Promise<RunningNginx> {
  const errorLog = () => readFile(path.join(prefix, 'error.log'), 'utf8').catch(() => '');
  const test = spawn(NGINX_BIN, ['-p', prefix + '/', '-c', path.join(prefix, 'nginx.conf'), '-t', '-q'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let testOut = '';
  test.stderr!.on('data', (d) => (testOut += d));
  const testCode: number = await new Promise((r) => test.on('exit', (c) => r(c ?? 1)));
  if (testCode !== 0) throw new Error(`nginx -t failed:\n${testOut}`);
  const child = spawn(NGINX_BIN, ['-p', prefix + '/', '-c', path.join(prefix, 'nginx.conf'), '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  try {
    await waitForPort(port, child);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${stderr}\n${await errorLog()}`);
  }
  return {
    prefix,
    errorLog,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      if (process.env.GW_NJS_DEBUG) process.stderr.write(`--- nginx error.log (${prefix})\n${await errorLog()}\n`);
      else await rm(prefix, { recursive: true, force: true });
    },
  };
}
