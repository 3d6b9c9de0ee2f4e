// njs integration fixtures: a prefix directory laid out for the hand-written configs in
// fixtures/ (files given as relative path -> text), served by the shared nginx runner.
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/njs/bundle.ts';
import { startGateway } from '../support/nginx.ts';

// The project runtime these hand-written configs run on: .runtime/ by default, or the one
// GATEWAYCTL_NGINX names (e.g. .runtime-next/bin/nginx); its modules sit beside bin/.
export const NGINX_BIN = process.env.GATEWAYCTL_NGINX ?? path.join(PROJECT_ROOT, '.runtime/bin/nginx');
export const NJS_MODULE_SO = path.join(path.dirname(path.dirname(NGINX_BIN)), 'modules/ngx_http_js_module.so');
/** The oldest supported target (nginx 1.26 + njs 0.8.9): what the njs-subset lint must match. */
export const OLDEST_NGINX_BIN = path.join(PROJECT_ROOT, '.runtime/bin/nginx');
export const OLDEST_NJS_MODULE_SO = path.join(PROJECT_ROOT, '.runtime/modules/ngx_http_js_module.so');
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

/**
 * Start nginx (the shared runner, tests/support/nginx.ts) on a prefix prepared with
 * makePrefix()/writeFiles(): `<prefix>/nginx.conf`, error log as that config names it.
 * stop() removes the prefix unless GW_NJS_DEBUG is set (then it prints the error log).
 */
export async function startNginx(prefix: string, port: number, nginx?: string): Promise<RunningNginx> {
  const gw = await startGateway({ distDir: prefix, prefix, ports: [port], timeoutMs: 10_000, nginx });
  return {
    prefix,
    errorLog: async () => gw.errorLog(),
    async stop() {
      await gw.stop();
      if (process.env.GW_NJS_DEBUG) process.stderr.write(`--- nginx error.log (${prefix})\n${gw.errorLog()}\n`);
      else await rm(prefix, { recursive: true, force: true });
    },
  };
}
