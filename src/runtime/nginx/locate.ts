// Locating nginx: the --nginx flag, GATEWAYCTL_NGINX, the project runtime under .runtime/,
// or PATH; plus the gatewayctl project root and the modules directory that goes with a binary.

import { existsSync, readFileSync, constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NginxNotFoundError, type NginxCandidate } from './errors.ts';

export type { NginxSource } from './errors.ts';
import type { NginxSource } from './errors.ts';

export interface NginxLocation {
  /** Absolute path of the executable (the runtime's is a wrapper script around Debian's nginx). */
  bin: string;
  /** How it was found: --nginx flag, GATEWAYCTL_NGINX, project .runtime/, or PATH. */
  source: NginxSource;
  /** Directory holding dynamic modules (ngx_http_js_module.so, …), or null if none known. */
  modulesDir: string | null;
}

export const NGINX_ENV = 'GATEWAYCTL_NGINX';
export const PROVISION_COMMAND = 'bash scripts/provision-runtime.sh';

/** System module directories checked when the binary is not the project runtime. */
const SYSTEM_MODULE_DIRS = ['/usr/lib/nginx/modules', '/etc/nginx/modules'];

let cachedRoot: string | null | undefined;

/**
 * The gatewayctl project root: the nearest ancestor of this source file whose package.json
 * is named "gatewayctl". Null when running from somewhere unexpected (e.g. a bundle).
 */
export function projectRoot(): string | null {
  if (cachedRoot !== undefined) return cachedRoot;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  cachedRoot = null;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'gatewayctl') {
          cachedRoot = dir;
          break;
        }
      } catch {
        // unreadable package.json: keep walking up
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return cachedRoot;
}

/** `<projectRoot>/.runtime`, honouring GATEWAYCTL_RUNTIME_DIR like provision-runtime.sh. */
export function runtimeDir(): string | null {
  const fromEnv = process.env.GATEWAYCTL_RUNTIME_DIR;
  if (fromEnv) return path.resolve(fromEnv);
  const root = projectRoot();
  return root ? path.join(root, '.runtime') : null;
}

async function isExecutableFile(p: string): Promise<string | null> {
  try {
    const st = await stat(p);
    if (!st.isFile()) return 'not a regular file';
    await access(p, fsConstants.X_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file';
    if (code === 'EACCES') return 'not executable';
    return code ?? String(err);
  }
}


/** Shared with versions.ts; not part of the public API (index.ts). */
export async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Modules directory for a binary: a runtime-style sibling (`<dir>/bin/nginx` next to
 * `<dir>/modules`), else the first system module directory that exists.
 */
async function modulesDirFor(bin: string): Promise<string | null> {
  const sibling = path.join(path.dirname(path.dirname(bin)), 'modules');
  if (path.basename(path.dirname(bin)) === 'bin' && (await isDir(sibling))) return sibling;
  for (const dir of SYSTEM_MODULE_DIRS) if (await isDir(dir)) return dir;
  return null;
}

/**
 * Find the nginx binary to use, in this order:
 *   1. `opts.nginx` (the --nginx flag), relative paths resolved against `opts.cwd`;
 *   2. the GATEWAYCTL_NGINX environment variable;
 *   3. the project runtime `<projectRoot>/.runtime/bin/nginx` (scripts/provision-runtime.sh);
 *   4. `nginx` on PATH (plus /usr/sbin and /usr/local/nginx/sbin, often missing from a
 *      non-root PATH).
 * An explicit flag or env value that does not point at an executable is an error rather
 * than a silent fall-through: the user asked for that binary.
 */
export async function findNginx(opts: { nginx?: string; cwd?: string } = {}): Promise<NginxLocation> {
  const cwd = opts.cwd ?? process.cwd();
  const tried: NginxCandidate[] = [];
  const provisionFix = provisionHint();

  const explicit: Array<[NginxSource, string | undefined, string]> = [
    ['flag', opts.nginx, '--nginx'],
    ['env', process.env[NGINX_ENV], NGINX_ENV],
  ];
  for (const [source, value, label] of explicit) {
    if (!value) continue;
    const bin = path.resolve(cwd, value);
    const problem = await isExecutableFile(bin);
    if (problem) {
      throw new NginxNotFoundError(
        `nginx given by ${label} is not usable: ${bin} (${problem}).`,
        [{ source, candidate: bin, problem }],
        `point ${label} at an nginx executable, or drop it to use the project runtime (${provisionFix}).`,
      );
    }
    return { bin, source, modulesDir: await modulesDirFor(bin) };
  }
  tried.push({ source: 'flag', candidate: '--nginx', problem: 'not given' });
  tried.push({ source: 'env', candidate: NGINX_ENV, problem: 'unset' });

  const rt = runtimeDir();
  if (rt) {
    const bin = path.join(rt, 'bin', 'nginx');
    const problem = await isExecutableFile(bin);
    if (!problem) {
      const modules = path.join(rt, 'modules');
      return { bin, source: 'runtime', modulesDir: (await isDir(modules)) ? modules : await modulesDirFor(bin) };
    }
    tried.push({ source: 'runtime', candidate: bin, problem: problem === 'no such file' ? 'not provisioned' : problem });
  } else {
    tried.push({ source: 'runtime', candidate: '.runtime/bin/nginx', problem: 'gatewayctl project root not found' });
  }

  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const extra of ['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  for (const dir of dirs) {
    const bin = path.resolve(dir, 'nginx');
    if (!(await isExecutableFile(bin))) return { bin, source: 'path', modulesDir: await modulesDirFor(bin) };
  }
  tried.push({ source: 'path', candidate: dirs.join(path.delimiter), problem: 'no nginx executable' });

  throw new NginxNotFoundError('nginx not found.', tried, `${provisionFix} (nginx 1.26 + njs 0.8 under .runtime/), or pass --nginx /path/to/nginx, or set ${NGINX_ENV}.`);
}

function provisionHint(): string {
  const root = projectRoot();
  return root ? `run \`${PROVISION_COMMAND}\` in ${root}` : `run \`${PROVISION_COMMAND}\` in the gatewayctl checkout`;
}
