// Locating and driving nginx: which binary, what it was built with, the prefix directory
// layout generated configs expect, `nginx -t`, and start / reload / stop.
//
// Conventions shared with the compiler (see ARCHITECTURE.md):
// - Every path inside a generated config is relative to the nginx prefix (`-p PREFIX`).
// - `load_module modules/…` resolves through `PREFIX/modules`, a symlink to the runtime's
//   modules directory that preparePrefix() maintains.
// - The pid file is `PREFIX/run/nginx.pid` unless the main config sets `pid` itself.
// - Generated configs never set `daemon`; the caller decides (startNginx `foreground`).
//
// Nothing here prints or exits: failures are thrown as NginxError with a `fix` hint.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, openSync, closeSync, constants as fsConstants } from 'node:fs';
import { access, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

export type NginxErrorCode =
  | 'NGINX_NOT_FOUND' // no usable binary (see NginxNotFoundError.tried)
  | 'NGINX_EXEC_FAILED' // the binary exists but `nginx -V` could not run
  | 'NGINX_START_FAILED' // nginx exited during startup (bad config, port in use, …)
  | 'NGINX_ALREADY_RUNNING' // the prefix's pid file names a live nginx
  | 'NGINX_NOT_RUNNING' // reload on a prefix without a live master
  | 'NGINX_RELOAD_FAILED' // HUP sent but the new configuration was not applied
  | 'NGINX_TIMEOUT'; // waited too long for a pid file, a port or an exit

export class NginxError extends Error {
  readonly code: NginxErrorCode;
  /** One actionable sentence: what to run or change. */
  readonly fix: string | null;
  /** Raw nginx output when there is some (stderr of the failed run, error log tail). */
  readonly output: string;
  constructor(code: NginxErrorCode, message: string, opts: { fix?: string; output?: string } = {}) {
    super(message + (opts.fix ? `\nFix: ${opts.fix}` : ''));
    this.name = 'NginxError';
    this.code = code;
    this.fix = opts.fix ?? null;
    this.output = opts.output ?? '';
  }
}

export interface NginxCandidate {
  source: NginxSource;
  candidate: string; // path or description that was checked
  problem: string; // why it was not used
}

/** Thrown by findNginx(): lists every place that was checked and why it did not qualify. */
export class NginxNotFoundError extends NginxError {
  readonly tried: NginxCandidate[];
  constructor(message: string, tried: NginxCandidate[], fix: string) {
    const lines = tried.map((t) => `  - ${t.source}: ${t.candidate} (${t.problem})`);
    super('NGINX_NOT_FOUND', `${message}\nChecked:\n${lines.join('\n')}`, { fix });
    this.name = 'NginxNotFoundError';
    this.tried = tried;
  }
}

// ---------------------------------------------------------------------------------------
// Locating nginx
// ---------------------------------------------------------------------------------------

export type NginxSource = 'flag' | 'env' | 'runtime' | 'path';

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

async function isDir(p: string): Promise<boolean> {
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

// ---------------------------------------------------------------------------------------
// Versions and modules
// ---------------------------------------------------------------------------------------

export interface DynamicModule {
  file: string; // absolute path of the .so
  /** Result of `nginx -t` on a config that only loads this module (ABI / version mismatch shows here). */
  loads: boolean;
  loadError: string | null;
}

export interface NjsInfo {
  module: DynamicModule | null;
  version: string | null;
  /** 'probe': answered by a running nginx (`njs.version` via js_content); 'binary': read from the .so. */
  versionSource: 'probe' | 'binary' | null;
  probeError: string | null;
}

export interface NginxInfo {
  bin: string;
  version: string; // e.g. "1.26.3"
  versionNumber: [number, number, number];
  /** OpenSSL nginx was built with / runs with, when reported by `nginx -V`. */
  openssl: { builtWith: string | null; runningWith: string | null };
  configureArgs: string[];
  /** Statically built modules, from `--with-X_module` (without =dynamic): http_v2, http_ssl, …; plus "compat". */
  builtinModules: string[];
  /** Compiled-in paths worth knowing (a config that omits temp paths inherits these absolute ones). */
  compiledPaths: Record<string, string>;
  modulesDir: string | null;
  /** Every `*.so` in modulesDir. */
  availableModules: string[];
  njs: NjsInfo;
  brotli: DynamicModule | null;
  stream: DynamicModule | null;
  /** Raw `nginx -V` output. */
  raw: string;
}

export const NJS_MODULE = 'ngx_http_js_module.so';
export const BROTLI_MODULE = 'ngx_http_brotli_filter_module.so';
export const STREAM_MODULE = 'ngx_stream_module.so';

/** Compare dotted versions numerically: <0, 0, >0. Missing components count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((n) => parseInt(n, 10) || 0);
  const pb = b.split('.').map((n) => parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Parse `nginx -V` output (pure; exported for tests). */
export function parseNginxV(raw: string): Pick<NginxInfo, 'version' | 'versionNumber' | 'openssl' | 'configureArgs' | 'builtinModules' | 'compiledPaths'> {
  const version = /nginx version: [^/\s]+\/(\d+\.\d+\.\d+)/.exec(raw)?.[1];
  if (!version) throw new NginxError('NGINX_EXEC_FAILED', `could not read a version from \`nginx -V\`:\n${raw.trim()}`);
  const nums = version.split('.').map(Number) as [number, number, number];
  const built = /built with (OpenSSL [^\s(]+(?: [^(\n]*?)?)\s*(?:\(running with (OpenSSL [^)]+)\))?\s*$/m.exec(raw);
  const argsLine = /^configure arguments:(.*)$/m.exec(raw)?.[1] ?? '';
  const configureArgs = splitConfigureArgs(argsLine);
  const builtinModules: string[] = [];
  const compiledPaths: Record<string, string> = {};
  for (const arg of configureArgs) {
    const mod = /^--with-([a-z0-9_]+)_module$/.exec(arg);
    if (mod) builtinModules.push(mod[1]);
    else if (arg === '--with-compat') builtinModules.push('compat');
    else if (arg === '--with-threads') builtinModules.push('threads');
    const p = /^--([a-z-]+-path|prefix)=(.*)$/.exec(arg);
    if (p) compiledPaths[p[1]] = p[2];
  }
  return {
    version,
    versionNumber: nums,
    openssl: { builtWith: built?.[1]?.trim() ?? null, runningWith: built?.[2]?.trim() ?? null },
    configureArgs,
    builtinModules,
    compiledPaths,
  };
}

/** Split the configure line, honouring single quotes as nginx prints them (--with-cc-opt='-g -O2'). */
function splitConfigureArgs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let has = false;
  for (const ch of line) {
    if (ch === "'") {
      quoted = !quoted;
      has = true;
    } else if (/\s/.test(ch) && !quoted) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

/**
 * Everything doctor and the build need to know about an nginx: `nginx -V` parsed, which
 * dynamic modules the modules directory holds and whether they load into this nginx, and
 * the njs version, read from a running nginx (`js_content` answering `njs.version` over a
 * unix socket in a throw-away prefix). When that probe cannot run, the version is read
 * from the module binary instead and `njs.probeError` says why.
 */
export async function nginxInfo(loc: NginxLocation, opts: { probeNjs?: boolean } = {}): Promise<NginxInfo> {
  let raw: string;
  try {
    const r = await execa(loc.bin, ['-V'], { reject: false, all: true, timeout: 15_000 });
    raw = r.all ?? '';
    if (r.exitCode !== 0) throw new Error(`exit code ${r.exitCode}: ${raw.trim()}`);
  } catch (err) {
    throw new NginxError('NGINX_EXEC_FAILED', `\`${loc.bin} -V\` failed: ${(err as Error).message}`, {
      fix: loc.source === 'runtime' ? `re-provision the runtime: ${PROVISION_COMMAND} --force` : 'check that the binary runs on this machine',
    });
  }
  const parsed = parseNginxV(raw);
  let modulesDir = loc.modulesDir;
  if (!modulesDir && parsed.compiledPaths['modules-path'] && (await isDir(parsed.compiledPaths['modules-path']))) {
    modulesDir = parsed.compiledPaths['modules-path'];
  }
  const availableModules = modulesDir ? (await readdir(modulesDir).catch(() => [] as string[])).filter((f) => f.endsWith('.so')).sort() : [];

  const moduleInfo = async (file: string, needs: string[] = []): Promise<DynamicModule | null> => {
    if (!modulesDir || !availableModules.includes(file)) return null;
    const abs = path.join(modulesDir, file);
    const res = await checkModuleLoads(loc, modulesDir, [...needs, file]);
    return { file: abs, loads: res.ok, loadError: res.ok ? null : res.message };
  };
  const [njsModule, brotli, stream] = await Promise.all([moduleInfo(NJS_MODULE), moduleInfo(BROTLI_MODULE), moduleInfo(STREAM_MODULE)]);

  const njs: NjsInfo = { module: njsModule, version: null, versionSource: null, probeError: null };
  if (njsModule && modulesDir) {
    if (njsModule.loads && opts.probeNjs !== false) {
      try {
        njs.version = await probeNjsVersion(loc, modulesDir);
        njs.versionSource = 'probe';
      } catch (err) {
        njs.probeError = (err as Error).message;
      }
    } else if (!njsModule.loads) {
      njs.probeError = njsModule.loadError;
    }
    if (!njs.version) {
      njs.version = await njsVersionFromBinary(njsModule.file);
      if (njs.version) njs.versionSource = 'binary';
    }
  }
  return { bin: loc.bin, ...parsed, modulesDir, availableModules, njs, brotli, stream, raw };
}

/** Temp-path directives so a throw-away config never touches the compiled-in /var/lib/nginx. */
function tempPathDirectives(indent = '  '): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `${indent}${t}_temp_path temp/${t};`)
    .join('\n');
}

async function withScratchPrefix<T>(modulesDir: string, fn: (prefix: string) => Promise<T>): Promise<T> {
  const prefix = await mkdtemp(path.join(tmpdir(), 'gatewayctl-probe-'));
  try {
    await preparePrefix(prefix, modulesDir);
    return await fn(prefix);
  } finally {
    await rm(prefix, { recursive: true, force: true });
  }
}

/** `nginx -t` on a config that only loads the given modules. */
async function checkModuleLoads(loc: NginxLocation, modulesDir: string, files: string[]): Promise<{ ok: boolean; message: string }> {
  return withScratchPrefix(modulesDir, async (prefix) => {
    const conf = path.join(prefix, 'conf', 'nginx.conf');
    await mkdir(path.dirname(conf), { recursive: true });
    await writeFile(
      conf,
      `${files.map((f) => `load_module modules/${f};`).join('\n')}\npid run/nginx.pid;\nerror_log logs/error.log;\nevents {}\nhttp {\n${tempPathDirectives()}\n}\n`,
    );
    const res = await testConfig(loc, prefix, conf);
    return { ok: res.ok, message: res.errors.map((e) => e.message).join('; ') || res.output.trim() };
  });
}

/** Run nginx in a scratch prefix with a js_content handler on a unix socket; return njs.version. */
async function probeNjsVersion(loc: NginxLocation, modulesDir: string): Promise<string> {
  return withScratchPrefix(modulesDir, async (prefix) => {
    // sun_path holds 108 bytes; a deep TMPDIR falls back to a short name in /tmp.
    let sock = path.join(prefix, 'run', 'njs.sock');
    if (Buffer.byteLength(sock) > 100) sock = `/tmp/gatewayctl-njs-${process.pid}-${Date.now()}.sock`;
    const confDir = path.join(prefix, 'conf');
    await mkdir(confDir, { recursive: true });
    await writeFile(path.join(confDir, 'probe.js'), 'function version(r) { r.return(200, njs.version); }\nexport default { version };\n');
    await writeFile(
      path.join(confDir, 'nginx.conf'),
      [
        `load_module modules/${NJS_MODULE};`,
        'pid run/nginx.pid;',
        'error_log logs/error.log notice;',
        'master_process off;',
        'events { worker_connections 16; }',
        'http {',
        '  access_log off;',
        tempPathDirectives(),
        '  js_import probe.js;',
        `  server { listen unix:${sock}; location / { js_content probe.version; } }`,
        '}',
        '',
      ].join('\n'),
    );
    const proc = await startNginx(loc, prefix, path.join(confDir, 'nginx.conf'), { foreground: true, timeoutMs: 10_000 });
    try {
      await waitFor(async () => existsSync(sock), 5_000, 'the njs probe socket');
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpRequest({ socketPath: sock, path: '/', timeout: 5_000 }, (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (data += c));
          res.on('end', () => (res.statusCode === 200 ? resolve(data) : reject(new Error(`probe answered ${res.statusCode}: ${data}`))));
        });
        req.on('timeout', () => req.destroy(new Error('probe request timed out')));
        req.on('error', reject);
        req.end();
      });
      const v = body.trim();
      if (!/^\d+\.\d+\.\d+/.test(v)) throw new Error(`unexpected njs.version answer: ${JSON.stringify(v)}`);
      return v;
    } catch (err) {
      const log = await readFile(path.join(prefix, 'logs', 'error.log'), 'utf8').catch(() => '');
      throw new Error(`${(err as Error).message}${log ? `\n${tail(log, 20)}` : ''}`);
    } finally {
      await killProcess(proc.pid, 'SIGTERM', 5_000);
      await rm(sock, { force: true });
    }
  });
}

/**
 * Fallback: njs keeps its version as a string constant next to the `version` property name
 * of the global `njs` object; pick the first dotted version after it.
 */
async function njsVersionFromBinary(file: string): Promise<string | null> {
  try {
    const text = (await readFile(file)).toString('latin1');
    const near = /version\x00[\s\S]{0,32}?(\d+\.\d+\.\d+)\x00/.exec(text);
    if (near) return near[1];
    const any = /(?:^|[^\d.])(0\.\d+\.\d+)\x00/.exec(text);
    return any ? any[1] : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// Prefix layout
// ---------------------------------------------------------------------------------------

/** Directories (relative to the prefix) that generated configs rely on. */
export const PREFIX_DIRS = [
  'logs',
  'run',
  'temp',
  'temp/client_body',
  'temp/proxy',
  'temp/fastcgi',
  'temp/uwsgi',
  'temp/scgi',
  'cache',
] as const;

export interface PrefixLayout {
  prefix: string; // absolute
  dirs: string[]; // absolute paths of PREFIX_DIRS and the extra dirs
  pidFile: string; // PREFIX/run/nginx.pid
  /** PREFIX/modules when it was linked (or already is a directory); null when modulesDir was null. */
  modules: string | null;
}

/**
 * Create the prefix layout (idempotent): logs/, run/, temp/{client_body,proxy,fastcgi,uwsgi,scgi},
 * cache/, any extra `opts.dirs` (relative to the prefix, e.g. a build manifest's prefixDirs),
 * and `modules` → modulesDir. An existing symlink pointing elsewhere is replaced
 * atomically; an existing real `modules` directory is left alone (e.g. inside a container
 * image that ships its modules there); any other file there is refused, never replaced.
 */
export async function preparePrefix(
  prefix: string,
  modulesDir: string | null,
  opts: { dirs?: string[] } = {},
): Promise<PrefixLayout> {
  const root = path.resolve(prefix);
  const rels: string[] = [...PREFIX_DIRS];
  for (const d of opts.dirs ?? []) {
    const norm = path.normalize(d);
    if (path.isAbsolute(norm) || norm === '..' || norm.startsWith(`..${path.sep}`)) {
      throw new Error(`preparePrefix: ${JSON.stringify(d)} is not a directory inside the prefix`);
    }
    if (norm !== '.' && !rels.includes(norm)) rels.push(norm);
  }
  const dirs = rels.map((d) => path.join(root, d));
  for (const d of dirs) await mkdir(d, { recursive: true });

  let modules: string | null = null;
  if (modulesDir) {
    const link = path.join(root, 'modules');
    const target = path.resolve(modulesDir);
    const existing = await lstat(link).catch(() => null);
    if (existing?.isDirectory()) {
      modules = link;
    } else if (existing?.isSymbolicLink() && path.resolve(root, await readlink(link)) === target) {
      modules = link;
    } else if (existing && !existing.isSymbolicLink()) {
      // a file of someone else's: never replaced (only gatewayctl's own link is)
      throw new Error(`${link} exists and is not a directory or symbolic link; move it away so nginx modules can be linked there`);
    } else {
      const tmp = `${link}.tmp-${process.pid}-${Date.now()}`;
      await symlink(target, tmp);
      await rename(tmp, link); // atomic replace of a stale link
      modules = link;
    }
  }
  return { prefix: root, dirs, pidFile: path.join(root, DEFAULT_PID_FILE), modules };
}

// ---------------------------------------------------------------------------------------
// nginx -t
// ---------------------------------------------------------------------------------------

export interface ConfigError {
  level: 'emerg' | 'alert' | 'crit' | 'error' | 'warn';
  /** File nginx blamed (absolute as nginx prints it), or null for errors without a location. */
  file: string | null;
  line: number | null;
  message: string; // without the "in file:line" suffix
}

export interface ConfigTestResult {
  ok: boolean;
  /** Combined stdout+stderr of `nginx -t`. */
  output: string;
  /** emerg/alert/crit/error lines (warnings are in `warnings`). */
  errors: ConfigError[];
  warnings: ConfigError[];
}

/**
 * Parse nginx diagnostics, both the stderr form (`nginx: [emerg] msg in /f.conf:12`) and
 * the error-log form (`2024/01/01 00:00:00 [emerg] 12#12: msg in /f.conf:12`).
 */
export function parseNginxErrors(output: string): ConfigError[] {
  const out: ConfigError[] = [];
  const re = /^(?:nginx: |\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d )\[(emerg|alert|crit|error|warn)\] (?:\d+#\d+: )?(.*)$/;
  for (const line of output.split(/\r?\n/)) {
    const m = re.exec(line);
    if (!m) continue;
    let message = m[2].trim();
    let file: string | null = null;
    let lineNo: number | null = null;
    const loc = / in (\S+):(\d+)$/.exec(message);
    if (loc) {
      file = loc[1];
      lineNo = Number(loc[2]);
      message = message.slice(0, loc.index);
    }
    out.push({ level: m[1] as ConfigError['level'], file, line: lineNo, message });
  }
  return out;
}

/**
 * `nginx -t -p PREFIX -c CONF`. The prefix must exist (nginx -t creates and removes the pid
 * file and opens the log files): call preparePrefix() first. A relative confPath is resolved
 * against the current directory, not the prefix. A config without a `pid` directive is
 * tested with `-g 'pid run/nginx.pid;'`, as startNginx() runs it.
 */
export async function testConfig(loc: NginxLocation, prefix: string, confPath: string): Promise<ConfigTestResult> {
  const conf = path.resolve(confPath);
  // Same pid default as startNginx(): never the compiled-in system-wide /run/nginx.pid.
  const globals = declaredPid(conf) === null ? `pid ${DEFAULT_PID_FILE};` : undefined;
  const r = await execa(loc.bin, ['-t', ...prefixArgs(prefix, conf, globals)], { reject: false, all: true, timeout: 60_000 });
  const output = r.all ?? '';
  const diags = parseNginxErrors(output);
  return {
    ok: r.exitCode === 0,
    output,
    errors: diags.filter((d) => d.level !== 'warn'),
    warnings: diags.filter((d) => d.level === 'warn'),
  };
}

function prefixArgs(prefix: string, conf: string, globals?: string): string[] {
  const p = path.resolve(prefix);
  const args = ['-p', p.endsWith(path.sep) ? p : p + path.sep, '-c', conf];
  if (globals) args.push('-g', globals);
  return args;
}

// ---------------------------------------------------------------------------------------
// Processes: start / reload / stop
// ---------------------------------------------------------------------------------------

export const DEFAULT_PID_FILE = 'run/nginx.pid';

/**
 * The pid file a config uses: its top-level `pid` directive (relative to the prefix) or
 * run/nginx.pid, which startNginx() imposes with `-g` when the config has none (the
 * compiled-in default would be the system-wide /run/nginx.pid).
 */
export function pidFileFor(prefix: string, confPath?: string): string {
  const declared = confPath ? declaredPid(confPath) : null;
  return path.resolve(prefix, declared ?? DEFAULT_PID_FILE);
}

function declaredPid(confPath: string): string | null {
  try {
    const text = readFileSync(confPath, 'utf8');
    const m = /^[ \t]*pid[ \t]+("[^"]+"|'[^']+'|[^;\s]+)[ \t]*;/m.exec(text);
    return m ? m[1].replace(/^["']|["']$/g, '') : null;
  } catch {
    return null;
  }
}

export interface StartOptions {
  /**
   * false (default): nginx daemonizes. Resolves once the launching process exited with
   * status 0 (config loaded, listening sockets bound) and the master's pid file exists.
   * true: nginx runs as our child with `-g 'daemon off;'`; resolves once the pid file names
   * that child. Either way the ports are bound when the promise resolves (nginx binds
   * before writing the pid file); use waitForPorts() to also see connections accepted.
   */
  foreground?: boolean;
  /** Foreground only: 'pipe' (default) captures stderr into output(); 'inherit' shares the terminal. */
  stdio?: 'pipe' | 'inherit';
  /** Startup deadline in ms (default 15000). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface NginxProcess {
  pid: number; // master pid (the runtime wrapper execs, so it is the spawned pid in foreground)
  mode: 'daemon' | 'foreground';
  prefix: string;
  confPath: string;
  pidFile: string;
  /** Foreground: the child process. Daemon: null. */
  child: ChildProcess | null;
  /** Foreground: resolves when the master exits. Daemon: null (poll isRunning()). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null;
  /** Startup/stderr output captured so far (foreground 'pipe' or daemon launch output). */
  output(): string;
}

/**
 * Start nginx for PREFIX with CONF. Refuses (NGINX_ALREADY_RUNNING) when the pid file names
 * a live nginx; removes a stale pid file. Throws NGINX_START_FAILED with nginx's output
 * when it exits during startup.
 */
export async function startNginx(
  loc: NginxLocation,
  prefix: string,
  confPath: string,
  opts: StartOptions = {},
): Promise<NginxProcess> {
  const root = path.resolve(prefix);
  const conf = path.resolve(confPath);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const hasPid = declaredPid(conf) !== null;
  const pidFile = pidFileFor(root, conf);

  const existing = await readPidFile(pidFile);
  if (existing !== null) {
    if (pidAlive(existing)) {
      throw new NginxError('NGINX_ALREADY_RUNNING', `nginx is already running for ${root} (pid ${existing}, ${pidFile}).`, {
        fix: 'reload it instead, or stop it first.',
      });
    }
    await rm(pidFile, { force: true });
  }
  await mkdir(path.dirname(pidFile), { recursive: true });

  const globals = [opts.foreground ? 'daemon off;' : '', hasPid ? '' : `pid ${DEFAULT_PID_FILE};`].filter(Boolean).join(' ');
  const args = prefixArgs(root, conf, globals || undefined);
  const env = opts.env ?? process.env;

  if (opts.foreground) {
    const inherit = opts.stdio === 'inherit';
    const child = spawn(loc.bin, args, { env, stdio: inherit ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const collect = (c: Buffer) => {
      out += c.toString('utf8');
      if (out.length > 1_000_000) out = out.slice(-500_000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => {
        exitInfo = { code, signal };
        resolve(exitInfo);
      });
      child.on('error', (err) => {
        out += `\n${err.message}`;
        exitInfo = { code: -1, signal: null };
        resolve(exitInfo);
      });
    });
    const proc: NginxProcess = { pid: child.pid ?? -1, mode: 'foreground', prefix: root, confPath: conf, pidFile, child, exited, output: () => out };
    try {
      await waitFor(
        async () => {
          if (exitInfo) {
            // Let the last stderr chunks arrive before reporting.
            await new Promise((r) => setTimeout(r, 50));
            throw startFailed(root, conf, `exited with ${exitInfo.code ?? exitInfo.signal}`, out);
          }
          return (await readPidFile(pidFile)) === child.pid;
        },
        timeoutMs,
        `nginx to write ${pidFile}`,
      );
    } catch (err) {
      if (!exitInfo) child.kill('SIGKILL');
      if (err instanceof NginxError && err.code === 'NGINX_TIMEOUT') {
        throw new NginxError('NGINX_TIMEOUT', `${err.message}\n${tail(out, 30)}`, { output: out });
      }
      throw err;
    }
    return proc;
  }

  // Daemon mode: the launching process exits once nginx has forked; its output goes to a
  // file (a pipe would be held open by the daemon if the config logs to stderr).
  const launchLog = path.join(root, 'logs', 'nginx-launch.log');
  await mkdir(path.dirname(launchLog), { recursive: true });
  const fd = openSync(launchLog, 'w');
  let child: ChildProcess;
  try {
    child = spawn(loc.bin, args, { env, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(null);
    }, timeoutMs);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
    child.on('error', () => {
      clearTimeout(timer);
      resolve(-1);
    });
  });
  const output = () => {
    try {
      return readFileSync(launchLog, 'utf8');
    } catch {
      return '';
    }
  };
  if (code !== 0) throw startFailed(root, conf, code === null ? 'timed out' : `exited with ${code}`, output());
  let pid: number | null = null;
  await waitFor(
    async () => {
      pid = await readPidFile(pidFile);
      return pid !== null && pidAlive(pid);
    },
    timeoutMs,
    `nginx to write ${pidFile}`,
  );
  return { pid: pid!, mode: 'daemon', prefix: root, confPath: conf, pidFile, child: null, exited: null, output };
}

function startFailed(prefix: string, conf: string, how: string, output: string): NginxError {
  const errs = parseNginxErrors(output);
  const first = errs[0];
  const where = first?.file ? ` (${first.file}:${first.line})` : '';
  return new NginxError(
    'NGINX_START_FAILED',
    `nginx failed to start (${how}) with prefix ${prefix} and ${conf}${first ? `: ${first.message}${where}` : ''}\n${output.trim()}`,
    { output },
  );
}

/** The master pid from the pid file, or null when the file is missing or not a number. */
export async function readPid(prefix: string, opts: { pidFile?: string } = {}): Promise<number | null> {
  return readPidFile(path.resolve(prefix, opts.pidFile ?? DEFAULT_PID_FILE));
}

async function readPidFile(file: string): Promise<number | null> {
  try {
    const n = parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** A live (non-zombie) process; on Linux also checks it is an nginx (guards against pid reuse). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (process.platform === 'linux') {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') return false;
      // The project runtime runs nginx through its glibc loader, so the master may show up
      // as ld-linux (its retitled argv is not always visible in cmdline).
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8') + readFileSync(`/proc/${pid}/comm`, 'utf8');
      return cmd.includes('nginx') || cmd.includes('ld-linux');
    } catch {
      return false;
    }
  }
  return true;
}

/** Pids whose parent is `pid` (Linux /proc; empty elsewhere): the master's workers/cache processes. */
export function childPids(pid: number): number[] {
  if (process.platform !== 'linux') return [];
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === pid && rest[0] !== 'Z') out.push(Number(e));
    } catch {
      // process vanished while scanning
    }
  }
  return out;
}

/** True when none of `pids` is alive and still holding a listening socket. */
function oldWorkersRetired(pids: Set<number>): boolean {
  const listening = listeningInodes();
  for (const p of pids) {
    if (!pidAlive(p)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue; // not inspectable: cannot tell, do not block on it
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSyncSafe(`/proc/${p}/fd/${fd}`));
        if (m && listening.has(m[1])) return false;
      } catch {
        // fd closed while scanning
      }
    }
  }
  return true;
}

function readlinkSyncSafe(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
}

/** Inodes of listening TCP and unix sockets in this network namespace (Linux /proc/net). */
function listeningInodes(): Set<string> {
  const out = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
        const cols = line.trim().split(/\s+/);
        if (cols[3] === '0A' && cols[9]) out.add(cols[9]); // st 0A = LISTEN
      }
    } catch {
      // no IPv6, or not Linux
    }
  }
  try {
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length >= 7 && (parseInt(cols[3], 16) & 0x10000) !== 0) out.add(cols[6]); // __SO_ACCEPTCON
    }
  } catch {
    // not Linux
  }
  return out;
}

/** True when PREFIX's pid file names a live nginx master. */
export async function isRunning(prefix: string, opts: { pidFile?: string } = {}): Promise<boolean> {
  const pid = await readPid(prefix, opts);
  return pid !== null && pidAlive(pid);
}

export interface ReloadOptions {
  pidFile?: string; // relative to prefix; default run/nginx.pid
  /**
   * Wait until the master has started new worker processes and the old ones have closed
   * their listening sockets (Linux; default true): from then on every new connection gets
   * the new configuration. A rejected configuration never gets new workers: [emerg] lines
   * the error log (`errorLog`) receives after the HUP fail the reload early.
   */
  wait?: boolean;
  timeoutMs?: number; // default 10000
  errorLog?: string; // absolute, or relative to prefix; default logs/error.log
}

const DEFAULT_ERROR_LOG = 'logs/error.log';

/** SIGHUP to the master named by the pid file: nginx re-reads its config without dropping connections. */
export async function reloadNginx(prefix: string, opts: ReloadOptions = {}): Promise<void> {
  const pid = await readPid(prefix, opts);
  if (pid === null || !pidAlive(pid)) {
    throw new NginxError('NGINX_NOT_RUNNING', `nginx is not running for ${path.resolve(prefix)} (no live pid in ${opts.pidFile ?? DEFAULT_PID_FILE}).`, {
      fix: 'start it first.',
    });
  }
  const wait = (opts.wait ?? true) && process.platform === 'linux';
  const before = new Set(childPids(pid));
  const logPath = path.resolve(prefix, opts.errorLog ?? DEFAULT_ERROR_LOG);
  const logStart = await stat(logPath).then((s) => s.size).catch(() => 0);
  process.kill(pid, 'SIGHUP');
  if (!wait) return;

  const readNewLog = async () => {
    const buf = await readFile(logPath).catch(() => Buffer.alloc(0));
    return buf.subarray(Math.min(logStart, buf.length)).toString('utf8');
  };
  try {
    await waitFor(
      async () => {
        // Live when new workers run and the old ones have stopped accepting (on SIGQUIT they
        // close their listening sockets, then finish in-flight requests and exit).
        if (childPids(pid).some((c) => !before.has(c)) && oldWorkersRetired(before)) return true;
        const fresh = await readNewLog();
        const emerg = parseNginxErrors(fresh).filter((e) => e.level === 'emerg');
        if (emerg.length) {
          throw new NginxError('NGINX_RELOAD_FAILED', `nginx rejected the new configuration; the old one keeps serving: ${emerg.map(fmtError).join('; ')}`, { output: fresh });
        }
        if (!pidAlive(pid)) throw new NginxError('NGINX_RELOAD_FAILED', `nginx master ${pid} exited during reload.`, { output: fresh });
        return false;
      },
      opts.timeoutMs ?? 10_000,
      'nginx to start new workers after reload',
    );
  } catch (err) {
    if (err instanceof NginxError && err.code === 'NGINX_TIMEOUT') {
      const fresh = await readNewLog();
      throw new NginxError('NGINX_RELOAD_FAILED', `reload not applied: ${err.message}${fresh ? `\n${tail(fresh, 20)}` : ''}`, {
        fix: 'check the configuration with `nginx -t` and the error log.',
        output: fresh,
      });
    }
    throw err;
  }
}

function fmtError(e: ConfigError): string {
  return e.file ? `${e.message} (${e.file}:${e.line})` : e.message;
}

export interface StopOptions {
  /** true: SIGQUIT (finish in-flight requests); false: SIGTERM (fast). Default true. */
  graceful?: boolean;
  /** After this many ms the master and its children get SIGKILL (default 10000). */
  timeoutMs?: number;
  pidFile?: string;
}

/**
 * Stop the nginx named by PREFIX's pid file. Returns false when nothing was running (a stale
 * pid file is removed), true once the master has exited.
 */
export async function stopNginx(prefix: string, opts: StopOptions = {}): Promise<boolean> {
  const pidFile = path.resolve(prefix, opts.pidFile ?? DEFAULT_PID_FILE);
  const pid = await readPidFile(pidFile);
  if (pid === null || !pidAlive(pid)) {
    await rm(pidFile, { force: true });
    return false;
  }
  await killProcess(pid, opts.graceful === false ? 'SIGTERM' : 'SIGQUIT', opts.timeoutMs ?? 10_000);
  await rm(pidFile, { force: true }); // nginx removes it itself unless it had to be killed
  return true;
}

/**
 * Signal an nginx master and wait for it to go; after timeoutMs escalate to SIGKILL for the
 * master and its children (workers outlive a SIGKILLed master otherwise, keeping the ports).
 */
export async function killProcess(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
  const children = childPids(pid);
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  try {
    await waitFor(async () => !pidAlive(pid), timeoutMs, `nginx ${pid} to exit`);
  } catch {
    for (const p of [pid, ...children, ...childPids(pid)]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await waitFor(async () => !pidAlive(pid), 5_000, `nginx ${pid} to die`).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------
// Waiting helpers
// ---------------------------------------------------------------------------------------

/** Poll `check` every 25 ms until it returns true; throws NGINX_TIMEOUT after timeoutMs. Errors from check propagate. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new NginxError('NGINX_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}.`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Resolve once a TCP connection to host:port succeeds. */
export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    const done = (ok: boolean) => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Wait until every port accepts TCP connections on `host` (default 127.0.0.1). `alive`, when
 * given, is consulted between attempts so a crashed nginx fails fast instead of timing out.
 */
export async function waitForPorts(
  ports: number[],
  opts: { host?: string; timeoutMs?: number; alive?: () => boolean | Promise<boolean> } = {},
): Promise<void> {
  const pending = new Set(ports);
  await waitFor(
    async () => {
      for (const p of [...pending]) if (await canConnect(p, opts.host)) pending.delete(p);
      if (pending.size && opts.alive && !(await opts.alive())) {
        throw new NginxError('NGINX_START_FAILED', `nginx exited before listening on ${[...pending].join(', ')}.`);
      }
      return pending.size === 0;
    },
    opts.timeoutMs ?? 10_000,
    `ports ${ports.join(', ')} to accept connections`,
  );
}

/** Last `n` lines of a text. */
export function tail(text: string, n: number): string {
  const lines = text.replace(/\s+$/, '').split('\n');
  return lines.slice(-n).join('\n');
}
