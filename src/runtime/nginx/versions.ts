// Versions and modules: `nginx -V` parsed, which dynamic modules (njs, brotli, stream) the
// modules directory holds and whether they load, and the njs version, probed from a running
// nginx in a throw-away prefix or read from the module binary.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { NginxError } from './errors.ts';
import { isDir, PROVISION_COMMAND, type NginxLocation } from './locate.ts';
import { preparePrefix } from './prefix.ts';
import { startNginx } from './start.ts';
import { killProcess } from './stop.ts';
import { testConfig } from './test-config.ts';
import { tail, waitFor } from './wait.ts';

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
export { compareVersions } from '../../model/versions.ts';

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
