// Deploy target layout, build manifests and the release list.
//
//   TARGET/
//     releases/<seq>-<UTC timestamp>-<output hash 12>/   one copied build each (nginx.conf, conf.d/, njs/, manifest.json)
//     current  -> releases/<name>                  the live release (nginx runs with -c TARGET/current/nginx.conf)
//     previous -> releases/<name>                  what `rollback` returns to by default
//     deploy.lock                                  {"pid","time","command"} while a deploy/rollback runs
//   PREFIX/ (default TARGET)  logs/ run/ temp/ cache/ modules -> nginx modules

import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import { readLinkOrNull } from './fsutil.ts';
import { isErrorLogFile, mainDirectives } from './nginxconf.ts';

export interface Layout {
  target: string;
  prefix: string;
  releasesDir: string;
  current: string;
  previous: string;
  lockFile: string;
  shadow: string; // prefix + config copy of the throwaway nginx that proves a release (while locked)
}

export function layout(target: string, prefix?: string): Layout {
  const t = path.resolve(target);
  return {
    target: t,
    prefix: path.resolve(prefix ?? t),
    releasesDir: path.join(t, 'releases'),
    current: path.join(t, 'current'),
    previous: path.join(t, 'previous'),
    lockFile: path.join(t, 'deploy.lock'),
    shadow: path.join(t, 'shadow'),
  };
}

export interface BuildManifest {
  input: { file: string; sha256: string };
  version: string;
  files: Record<string, string>;
  /** host: Host/SNI to send; health: liveness path on the same listener (200 expected) */
  readiness: { path: string; listen: string; tls?: boolean; host?: string; health?: string } | null;
  prefixDirs: string[]; // relative to the nginx prefix
  /** TLS listeners this build leaves out because their ACME certificate was not issued yet */
  certificatePending: string[];
  /** pid file and error log of the nginx running this build (builds older than this field: null) */
  runtime: { pid: string; errorLog: string } | null;
  raw: Record<string, unknown>;
}

export class ManifestError extends Error {}

function manifestRuntime(x: unknown): BuildManifest['runtime'] {
  const r = x as { pid?: unknown; errorLog?: unknown } | undefined;
  return r && typeof r.pid === 'string' && typeof r.errorLog === 'string' ? { pid: r.pid, errorLog: r.errorLog } : null;
}

/**
 * The pid file and error-log files of the nginx serving a build (paths as written: relative to
 * the prefix unless absolute): from its manifest, which the build writes from the model;
 * builds made before the manifest carried them are read from their nginx.conf.
 */
export function buildRuntime(dir: string): { pid: string | null; errorLogs: string[] } {
  let declared: BuildManifest['runtime'] = null;
  try {
    declared = manifestRuntime((JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { runtime?: unknown }).runtime);
  } catch {
    // no readable manifest: fall back to the config itself
  }
  if (declared) return { pid: declared.pid, errorLogs: isErrorLogFile(declared.errorLog) ? [declared.errorLog] : [] };
  let text = '';
  try {
    text = readFileSync(path.join(dir, 'nginx.conf'), 'utf8');
  } catch {
    // no config either: the defaults
  }
  return mainDirectives(text);
}

export async function readManifest(dir: string): Promise<BuildManifest> {
  const file = path.join(dir, 'manifest.json');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ManifestError(code === 'ENOENT' ? `${file} not found (is ${dir} a gatewayctl build?)` : `${file}: ${(e as Error).message}`);
  }
  const input = raw.input as { file?: unknown; sha256?: unknown } | undefined;
  if (!input || typeof input.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(input.sha256)) {
    throw new ManifestError(`${file}: input.sha256 missing or not a sha256 hex digest`);
  }
  const files = raw.files as Record<string, unknown> | undefined;
  if (!files || typeof files !== 'object') throw new ManifestError(`${file}: files map missing`);
  const fileMap: Record<string, string> = {};
  for (const [k, v] of Object.entries(files)) {
    if (typeof v !== 'string') throw new ManifestError(`${file}: files["${k}"] is not a checksum`);
    if (path.isAbsolute(k) || k.split('/').includes('..')) throw new ManifestError(`${file}: files["${k}"] escapes the build directory`);
    fileMap[k] = v;
  }
  if (!('nginx.conf' in fileMap)) throw new ManifestError(`${file}: files does not list nginx.conf`);
  const r = raw.readiness as Record<string, unknown> | undefined;
  let readiness: BuildManifest['readiness'] = null;
  if (r && typeof r === 'object') {
    const p = r['url path'] ?? r['path'] ?? r['urlPath'];
    const listen = r['listen'];
    if (typeof p === 'string' && typeof listen === 'string') readiness = { path: p, listen };
    // The name the readiness server answers to (listeners with server_names and no status listener).
    if (readiness && typeof r['host'] === 'string' && /^[A-Za-z0-9.-]{1,253}$/.test(r['host'])) readiness.host = r['host'];
    if (readiness && typeof r['health'] === 'string' && /^\/[\x21-\x7e]{0,1023}$/.test(r['health'])) readiness.health = r['health'];
  }
  // A readiness endpoint on a TLS listener (no plain listener, no status listener) is probed over https.
  if (readiness && Array.isArray(raw.listeners)) {
    const port = Number(/(\d+)$/.exec(readiness.listen)?.[1]);
    const l = (raw.listeners as { port?: unknown; tls?: unknown }[]).find((x) => x && x.port === port);
    if (l?.tls === true) readiness.tls = true;
  }
  return {
    input: { file: typeof input.file === 'string' ? input.file : 'gateway.yaml', sha256: input.sha256 },
    version: typeof raw.version === 'string' ? raw.version : '?',
    files: fileMap,
    readiness,
    prefixDirs: Array.isArray(raw.prefixDirs) ? raw.prefixDirs.filter((d): d is string => typeof d === 'string') : [],
    certificatePending: Array.isArray(raw.listeners)
      ? (raw.listeners as { name?: unknown; certificatePending?: unknown }[]).filter((l) => l && l.certificatePending === true && typeof l.name === 'string').map((l) => l.name as string)
      : [],
    runtime: manifestRuntime(raw.runtime),
    raw,
  };
}

export function sameFiles(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

// Release names: <sequence>-<UTC timestamp>-<output hash, 12 hex>, e.g.
// 0007-20261123T165515.123Z-3f2a9c81d0e4. The sequence number is unique and increases with
// every new release; the output hash covers every file of the build (manifest.json
// included), so two builds of the same input that differ in output (ACME pending vs issued)
// get different names. Names of older versions (<timestamp>-<input hash 12>[-n]) are still
// recognised, with sequence 0, and sort before all new ones.
const NAME_RE = /^(\d{4,9})-(\d{8}T\d{6}(?:\.\d{3})?Z)-([0-9a-f]{12})$/;
const LEGACY_RE = /^(\d{8}T\d{6}(?:\.\d{3})?Z)-([0-9a-f]{12})(?:-\d+)?$/;

export function isReleaseName(name: string): boolean {
  return NAME_RE.test(name) || LEGACY_RE.test(name);
}

/** 0007-20261123T165515.123Z-0123456789ab */
export function releaseName(seq: number, now: Date, outputHash: string): string {
  const iso = now.toISOString(); // 2026-11-23T16:55:15.123Z
  const stamp = iso.replace(/[-:]/g, '');
  return `${String(seq).padStart(4, '0')}-${stamp}-${outputHash.slice(0, 12)}`;
}

/** The release's sequence number (0 for names from older versions), or null for other names. */
export function releaseSeq(name: string): number | null {
  const m = NAME_RE.exec(name);
  if (m) return Number(m[1]);
  return LEGACY_RE.test(name) ? 0 : null;
}

export function releaseTime(name: string): string | null {
  const m = NAME_RE.exec(name) ?? LEGACY_RE.exec(name);
  if (!m) return null;
  const s = (NAME_RE.test(name) ? m[2] : m[1])!;
  return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13)}`;
}

/** Oldest first: by sequence number, then by name (timestamps). */
export function compareReleases(a: string, b: string): number {
  const d = (releaseSeq(a) ?? 0) - (releaseSeq(b) ?? 0);
  return d !== 0 ? d : a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Content hash of a whole build: sha256 of its sha256sum-style listing (`<sha256>  <path>`
 * per line, sorted by path) of every file the manifest lists plus manifest.json itself.
 */
export async function outputHash(dir: string, m: BuildManifest): Promise<string> {
  const manifestSum = createHash('sha256').update(await fsp.readFile(path.join(dir, 'manifest.json'))).digest('hex');
  const entries: [string, string][] = [...Object.entries(m.files), ['manifest.json', manifestSum]];
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return createHash('sha256').update(entries.map(([f, h]) => `${h}  ${f}\n`).join('')).digest('hex');
}

/** Name of the release a TARGET/current or TARGET/previous link points at, or null. */
export async function linkedRelease(link: string): Promise<string | null> {
  const t = await readLinkOrNull(link);
  if (!t) return null;
  const name = path.basename(t.replace(/\/+$/, ''));
  return isReleaseName(name) ? name : null;
}

export async function releaseNames(L: Layout): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fsp.readdir(L.releasesDir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isDirectory() && isReleaseName(e.name))
    .map((e) => e.name)
    .sort(compareReleases);
}

export interface ReleaseInfo {
  name: string;
  dir: string;
  seq: number; // 0 for names from older versions
  time: string | null; // ISO, from the name
  outputHash: string | null; // content hash of the whole release (see outputHash)
  inputHash: string | null;
  inputFile: string | null;
  version: string | null;
  certificatePending: string[]; // listeners served without TLS (ACME certificate not issued in this build)
  live: boolean;
  previous: boolean;
  error?: string; // unreadable manifest
}

export async function listReleases(L: Layout): Promise<ReleaseInfo[]> {
  const live = await linkedRelease(L.current);
  const prev = await linkedRelease(L.previous);
  const out: ReleaseInfo[] = [];
  for (const name of await releaseNames(L)) {
    const dir = path.join(L.releasesDir, name);
    const info: ReleaseInfo = {
      name,
      dir,
      seq: releaseSeq(name) ?? 0,
      time: releaseTime(name),
      outputHash: null,
      inputHash: null,
      certificatePending: [],
      inputFile: null,
      version: null,
      live: name === live,
      previous: name === prev,
    };
    try {
      const m = await readManifest(dir);
      info.inputHash = m.input.sha256;
      info.inputFile = m.input.file;
      info.version = m.version;
      info.outputHash = await outputHash(dir, m);
      info.certificatePending = m.certificatePending;
    } catch (e) {
      info.error = (e as Error).message;
    }
    out.push(info);
  }
  return out;
}
