// deploy / rollback: copy a build into a new release, `nginx -t` it, switch TARGET/current
// atomically, reload (or start) nginx and wait for /ready to report the new input hash.
// Any failure after the switch points `current` back at the previous release and reloads it.

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { assertReplaceable, deployTarget, UnsafeReplaceError } from '../build/guard.ts';
import { atomicSymlink, copyTreeDurable, exists, fsyncPath, sha256File } from './fsutil.ts';
import { acquireLock, LockBusyError } from './lock.ts';
import {
  fatalLines,
  logOffset,
  nginxStart,
  nginxTest,
  preparePrefixDirs,
  readLogSince,
  locateNginx,
  type NginxLocation,
  runCapture,
  runningMaster,
  nginxReload,
  sleep,
  stopMaster,
  waitLogsQuiet,
} from './nginx.ts';
import { waitReady } from './ready.ts';
import { proveRelease } from './shadow.ts';
import {
  buildRuntime,
  type BuildManifest,
  type Layout,
  layout,
  linkedRelease,
  ManifestError,
  outputHash,
  readManifest,
  releaseName,
  releaseNames,
  releaseSeq,
} from './releases.ts';

export type DeployStep = 'lock' | 'build' | 'copy' | 'test' | 'prove' | 'switch' | 'reload' | 'start' | 'ready' | 'select';

export const STEP_TEXT: Record<DeployStep, string> = {
  lock: 'acquire deploy lock',
  build: 'read build',
  copy: 'copy release',
  test: 'nginx -t',
  prove: 'prove release on shadow ports',
  switch: 'switch current symlink',
  reload: 'reload nginx',
  start: 'start nginx',
  ready: 'wait for /ready',
  select: 'select release',
};

export class DeployError extends Error {
  /** What happened to the previous release after the failure (human readable). */
  recovery: string | null = null;
  /** reload only: nginx refused the new configuration and kept serving the old one. */
  refused = false;
  constructor(
    public readonly step: DeployStep,
    message: string,
    public readonly detail: string = '',
  ) {
    super(message);
  }
}

export interface CommonOptions {
  target: string;
  nginx?: string; // binary; default: GATEWAYCTL_NGINX, project runtime, PATH
  prefix?: string; // nginx -p; default: TARGET
  reloadCmd?: string; // shell command instead of HUP/start, e.g. "systemctl reload nginx"
  readyTimeoutMs?: number; // default 15000
  log?: (line: string) => void;
}

export interface DeployOptions extends CommonOptions {
  from: string; // build output dir (default dist)
  keep?: number; // releases to keep (default 5; live and previous always kept)
}

export interface RollbackOptions extends CommonOptions {
  /** release name, sequence number, or a unique prefix of a name, output hash or input hash; default: previous */
  to?: string;
}

export interface ActivationResult {
  status: 'deployed' | 'unchanged' | 'rolled-back';
  release: string;
  /** deployed: the build is byte-identical to this existing (older) release, which was made live again */
  reused?: boolean;
  previous: string | null; // the release that was live before (rollback target next time)
  inputHash: string;
  outputHash: string;
  /** listeners the now-live release leaves out because its ACME certificate was pending when built */
  certificatePending?: string[];
  started: boolean; // nginx was started rather than reloaded
  pruned: string[];
}

interface Ctx {
  L: Layout;
  nginx: NginxLocation;
  reloadCmd?: string;
  readyTimeoutMs: number;
  log: (line: string) => void;
}

async function makeCtx(o: CommonOptions): Promise<Ctx> {
  let nginx: NginxLocation;
  try {
    nginx = await locateNginx(o.nginx);
  } catch (e) {
    throw new DeployError('select', (e as Error).message);
  }
  return {
    L: layout(o.target, o.prefix),
    nginx,
    reloadCmd: o.reloadCmd,
    readyTimeoutMs: o.readyTimeoutMs ?? 15_000,
    log: o.log ?? (() => {}),
  };
}

function confOf(ctx: Ctx, release: string): string {
  return path.join(ctx.L.releasesDir, release, 'nginx.conf');
}

/** nginx is always run against TARGET/current so a reload re-reads whatever it points at. */
function liveConf(ctx: Ctx): string {
  return path.join(ctx.L.current, 'nginx.conf');
}

interface ReleaseRuntime {
  pidFile: string;
  errorLogs: string[];
}

/**
 * The pid file and error log of the nginx running a release: from its manifest, which the
 * build writes from the model; releases built before the manifest carried them are read
 * from their nginx.conf.
 */
async function releaseRuntime(ctx: Ctx, release: string | null): Promise<ReleaseRuntime> {
  const abs = (p: string) => (path.isAbsolute(p) ? p : path.join(ctx.L.prefix, p));
  const rt = release ? buildRuntime(path.dirname(confOf(ctx, release))) : { pid: null, errorLogs: [] };
  return { pidFile: abs(rt.pid ?? 'run/nginx.pid'), errorLogs: rt.errorLogs.map(abs) };
}

/** Verify every file the manifest lists against its checksum. */
async function verifyFiles(dir: string, m: BuildManifest): Promise<string[]> {
  const problems: string[] = [];
  for (const [rel, sum] of Object.entries(m.files)) {
    const f = path.join(dir, rel);
    if (!(await exists(f))) problems.push(`${rel}: listed in manifest.json but missing`);
    else if ((await sha256File(f)) !== sum) problems.push(`${rel}: checksum differs from manifest.json`);
  }
  return problems;
}

/**
 * Make nginx run `release` (already linked as TARGET/current): reload, or start when not
 * running; then wait for /ready to report the release's input hash. Throws DeployError.
 */
async function applyAndWait(ctx: Ctx, release: string, live: string | null): Promise<{ started: boolean }> {
  const m = await readManifest(path.join(ctx.L.releasesDir, release));
  const rtNew = await releaseRuntime(ctx, release);
  const rtOld = await releaseRuntime(ctx, live);
  const logs = [...new Set([...rtOld.errorLogs, ...rtNew.errorLogs])];
  const offsets = new Map<string, number>();
  for (const l of logs) offsets.set(l, await logOffset(l));
  const pidFile = (await runningMaster(rtOld.pidFile)) !== null ? rtOld.pidFile : rtNew.pidFile;
  const pid = await runningMaster(pidFile);
  let started = false;
  let step: DeployStep;

  if (ctx.reloadCmd) {
    step = 'reload';
    ctx.log(`reloading with: ${ctx.reloadCmd}`);
    const r = await runCapture(ctx.reloadCmd, [], { shell: true, timeoutMs: 120_000 });
    if (r.code !== 0) throw new DeployError('reload', `reload command failed (exit ${r.code ?? r.signal})`, r.output.trim());
  } else if (pid !== null) {
    step = 'reload';
    ctx.log(`reloading nginx (pid ${pid})`);
    const r = await nginxReload(ctx.L.prefix, pidFile, rtNew.errorLogs[0] ?? rtOld.errorLogs[0], ctx.readyTimeoutMs);
    if (!r.ok) {
      const err = new DeployError('reload', `nginx could not apply release ${release}:\n${r.output.trim()}`);
      err.refused = r.refused;
      throw err;
    }
  } else {
    step = 'start';
    ctx.log(`starting nginx: ${ctx.nginx.bin} -p ${ctx.L.prefix}/ -c ${liveConf(ctx)}`);
    const r = await nginxStart(ctx.nginx, ctx.L.prefix, liveConf(ctx));
    if (!r.ok) {
      const extra = fatalLines((await Promise.all(logs.map((l) => readLogSince(l, offsets.get(l) ?? 0)))).join('\n'));
      throw new DeployError('start', `nginx failed to start`, [r.output.trim(), ...extra].filter(Boolean).join('\n'));
    }
    started = true;
  }

  // Fail fast when nginx logs that it could not apply the config (bind() failed, …).
  const check = async (): Promise<string | null> => {
    const lines: string[] = [];
    for (const l of logs) lines.push(...fatalLines(await readLogSince(l, offsets.get(l) ?? 0)));
    if (lines.length) {
      await sleep(200); // let nginx finish writing related lines
      const all: string[] = [];
      for (const l of logs) all.push(...fatalLines(await readLogSince(l, offsets.get(l) ?? 0)));
      return `nginx could not apply release ${release}:\n${[...new Set(all)].join('\n')}`;
    }
    if (!ctx.reloadCmd) {
      const running = (await runningMaster(rtNew.pidFile)) ?? (await runningMaster(rtOld.pidFile));
      if (running === null) return 'nginx master is no longer running';
    }
    return null;
  };

  if (!m.readiness) {
    ctx.log('manifest.json has no readiness endpoint; checking the error log only');
    await sleep(1000);
    const reason = await check();
    if (reason) throw refusal(step, reason);
    return { started };
  }
  ctx.log(`waiting for ${m.readiness.tls ? 'https' : 'http'}://${m.readiness.listen}${m.readiness.path} to report ${m.input.sha256.slice(0, 12)}`);
  const w = await waitReady(m.readiness, m.input.sha256, { timeoutMs: ctx.readyTimeoutMs, check });
  if (!w.ok) {
    const fatal = w.reason.startsWith('nginx could not apply') || w.reason.startsWith('nginx master');
    throw fatal ? refusal(step, w.reason) : new DeployError('ready', w.reason);
  }
  return { started };
}

/**
 * A reload (signal or --reload-cmd) after which nginx logged [emerg]: nginx refused the new
 * configuration and kept running the old one (a failed cycle never replaces the live one).
 */
function refusal(step: DeployStep, reason: string): DeployError {
  const err = new DeployError(step, reason);
  err.refused = step === 'reload' && reason.startsWith('nginx could not apply');
  return err;
}

/** After a failed activation: point current back at `live`, reload it and confirm it is ready. */
async function revert(ctx: Ctx, failed: string, live: string | null, err: DeployError, wasRunning: boolean): Promise<void> {
  if (!live) {
    await fsp.rm(ctx.L.current, { force: true });
    const rt = await releaseRuntime(ctx, failed);
    const pid = wasRunning || ctx.reloadCmd ? null : await runningMaster(rt.pidFile);
    if (pid !== null) await stopMaster(rt.pidFile);
    err.recovery = 'no previous release to return to; current link removed' + (pid !== null ? ', nginx stopped' : '');
    return;
  }
  ctx.log(`restoring ${live}`);
  await atomicSymlink(`releases/${live}`, ctx.L.current);
  if (err.step === 'reload' || err.step === 'ready') {
    const logs = [...new Set([...(await releaseRuntime(ctx, live)).errorLogs, ...(await releaseRuntime(ctx, failed)).errorLogs])];
    await waitLogsQuiet(logs);
  }
  // nginx refused the reload and kept running the old configuration: the link is restored,
  // and a second reload would only restart workers for nothing. Confirm it still serves.
  if (err.refused) {
    const lm = await readManifest(path.join(ctx.L.releasesDir, live)).catch(() => null);
    const rt = await releaseRuntime(ctx, live);
    const running = (await runningMaster(rt.pidFile)) !== null;
    const w = lm?.readiness && running ? await waitReady(lm.readiness, lm.input.sha256, { timeoutMs: Math.min(ctx.readyTimeoutMs, 5000) }) : null;
    if (lm && running && (lm.readiness ? w?.ok === true : true)) {
      err.recovery = `restored ${live}; nginx refused the new configuration and kept serving it (not reloaded again)`;
      return;
    }
    ctx.log(`${live} is not answering after the refused reload; reloading it`);
  }
  try {
    await applyAndWait(ctx, live, failed);
    err.recovery = `restored ${live}; it is serving`;
  } catch (e) {
    const d = e as DeployError;
    err.recovery = `restored the current link to ${live}, but ${STEP_TEXT[d.step] ?? d.step} failed: ${d.message}${d.detail ? `\n${d.detail}` : ''}`;
  }
}

/** Test, switch, apply; on failure revert and rethrow. */
async function activate(ctx: Ctx, release: string, live: string | null): Promise<{ started: boolean }> {
  const t = await nginxTest(ctx.nginx, ctx.L.prefix, confOf(ctx, release));
  if (!t.ok) throw new DeployError('test', `nginx -t rejected release ${release}`, t.output.trim());
  ctx.log(`nginx -t ok for ${release}`);
  const m = await readManifest(path.join(ctx.L.releasesDir, release));
  const proof = await proveRelease({
    nginx: ctx.nginx,
    releaseDir: path.join(ctx.L.releasesDir, release),
    shadowRoot: ctx.L.shadow,
    prefixDirs: m.prefixDirs,
    readiness: m.readiness,
    health: m.readiness?.health ?? null,
    expectedHash: m.input.sha256,
    timeoutMs: ctx.readyTimeoutMs,
    log: ctx.log,
  });
  if (!proof.ok) throw new DeployError('prove', `release ${release} was not switched live: ${proof.reason}`, proof.detail);
  ctx.log(`release ${release} answered on shadow ports${proof.readyAt ? ` (${proof.readyAt})` : ''}`);
  try {
    await atomicSymlink(`releases/${release}`, ctx.L.current);
  } catch (e) {
    throw new DeployError('switch', `cannot switch ${ctx.L.current}: ${(e as Error).message}`);
  }
  ctx.log(`current -> releases/${release}`);
  const rtLive = await releaseRuntime(ctx, live);
  const wasRunning = (await runningMaster(rtLive.pidFile)) !== null;
  try {
    return await applyAndWait(ctx, release, live);
  } catch (e) {
    const err = e instanceof DeployError ? e : new DeployError('reload', (e as Error).message);
    await revert(ctx, release, live, err, wasRunning);
    throw err;
  }
}

async function withLock<T>(ctx: Ctx, command: string, fn: () => Promise<T>): Promise<T> {
  // The target must be new, empty or a deploy target already: deploy prunes releases/ and
  // renames links over `current`/`previous`, so it never claims a directory it did not create.
  try {
    assertReplaceable(ctx.L.target, 'deploy target', deployTarget);
  } catch (e) {
    if (e instanceof UnsafeReplaceError) throw new DeployError('lock', `${e.message} (choose a new or empty --target)`);
    throw e;
  }
  await fsp.mkdir(ctx.L.releasesDir, { recursive: true });
  let lock;
  try {
    lock = await acquireLock(ctx.L.lockFile, command, (msg) => ctx.log(msg));
  } catch (e) {
    if (e instanceof LockBusyError) throw new DeployError('lock', e.message);
    throw new DeployError('lock', `cannot create ${ctx.L.lockFile}: ${(e as Error).message}`);
  }
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

function pendingOf(m: BuildManifest): Pick<ActivationResult, 'certificatePending'> {
  return m.certificatePending.length ? { certificatePending: m.certificatePending } : {};
}

/** Remove old releases beyond `keep` (newest first), never the live or previous one. */
export async function pruneReleases(L: Layout, keep: number): Promise<string[]> {
  const live = await linkedRelease(L.current);
  const prev = await linkedRelease(L.previous);
  const names = (await releaseNames(L)).reverse(); // newest first
  const removed: string[] = [];
  let kept = 0;
  for (const n of names) {
    if (n === live || n === prev) {
      kept++;
      continue;
    }
    if (kept < keep) {
      kept++;
      continue;
    }
    await fsp.rm(path.join(L.releasesDir, n), { recursive: true, force: true });
    removed.push(n);
  }
  // Leftovers of interrupted copies (we hold the lock, so nothing else is writing).
  for (const e of await fsp.readdir(L.releasesDir).catch(() => [] as string[])) {
    if (e.startsWith('.tmp-')) await fsp.rm(path.join(L.releasesDir, e), { recursive: true, force: true });
  }
  if (removed.length) await fsyncPath(L.releasesDir);
  return removed;
}

export async function deploy(o: DeployOptions): Promise<ActivationResult> {
  const ctx = await makeCtx(o);
  const from = path.resolve(o.from);
  const keep = o.keep ?? 5;
  return withLock(ctx, 'deploy', async () => {
    // 1. the build
    let m: BuildManifest;
    try {
      m = await readManifest(from);
    } catch (e) {
      throw new DeployError('build', (e as Error).message);
    }
    const bad = await verifyFiles(from, m);
    if (bad.length) throw new DeployError('build', `build ${from} does not match its manifest.json`, bad.join('\n'));

    const live = await linkedRelease(ctx.L.current);
    if (live && !(await exists(path.join(ctx.L.releasesDir, live)))) {
      throw new DeployError('select', `${ctx.L.current} points at ${live}, which does not exist`);
    }

    // 2. the same output already deployed? Live: nothing to do. Older release: make it live
    //    again instead of copying a duplicate (one release per distinct output).
    const outHash = await outputHash(from, m);
    const names = await releaseNames(ctx.L);
    const identical = async (n: string): Promise<boolean> => {
      const dir = path.join(ctx.L.releasesDir, n);
      const rm = await readManifest(dir).catch(() => null);
      return !!rm && (await outputHash(dir, rm).catch(() => null)) === outHash && (await verifyFiles(dir, rm)).length === 0;
    };
    let same: string | null = null;
    if (live && (await identical(live))) same = live;
    for (const n of [...names].reverse()) {
      if (same) break;
      if (n !== live && (await identical(n))) same = n;
    }
    if (live && same === live) {
      const lm = await readManifest(path.join(ctx.L.releasesDir, live));
      const rt = await releaseRuntime(ctx, live);
      let started = false;
      if (!ctx.reloadCmd && (await runningMaster(rt.pidFile)) === null) {
        ctx.log(`release ${live} is already live but nginx is not running; starting it`);
        await preparePrefixDirs(ctx.L.prefix, ctx.nginx, lm.prefixDirs);
        const r = await applyAndWait(ctx, live, live);
        started = r.started;
      }
      return { status: 'unchanged', release: live, previous: await linkedRelease(ctx.L.previous), inputHash: m.input.sha256, outputHash: outHash, started, pruned: [] };
    }
    if (same) {
      ctx.log(`the build is identical to releases/${same}; making it live again`);
      await preparePrefixDirs(ctx.L.prefix, ctx.nginx, m.prefixDirs);
      const { started } = await activate(ctx, same, live);
      if (live) await atomicSymlink(`releases/${live}`, ctx.L.previous);
      const pruned = await pruneReleases(ctx.L, keep);
      for (const p of pruned) ctx.log(`pruned releases/${p}`);
      return { status: 'deployed', reused: true, release: same, previous: live, inputHash: m.input.sha256, outputHash: outHash, started, pruned, ...pendingOf(m) };
    }

    // 3. copy into a new release directory (temp name, fsync, rename)
    const seq = Math.max(0, ...names.map((n) => releaseSeq(n) ?? 0)) + 1;
    const name = releaseName(seq, new Date(), outHash);
    const tmp = path.join(ctx.L.releasesDir, `.tmp-${name}-${process.pid}`);
    const dir = path.join(ctx.L.releasesDir, name);
    try {
      await fsp.rm(tmp, { recursive: true, force: true });
      await copyTreeDurable(from, tmp);
      const problems = await verifyFiles(tmp, m);
      if (problems.length) throw new Error(problems.join('; '));
      await fsp.rename(tmp, dir);
      await fsyncPath(ctx.L.releasesDir);
    } catch (e) {
      await fsp.rm(tmp, { recursive: true, force: true });
      throw new DeployError('copy', `cannot copy ${from} to ${dir}: ${(e as Error).message}`);
    }
    ctx.log(`copied build to releases/${name}`);

    // 4. test, switch, reload/start, ready — or revert
    await preparePrefixDirs(ctx.L.prefix, ctx.nginx, m.prefixDirs);
    let started: boolean;
    try {
      ({ started } = await activate(ctx, name, live));
    } catch (e) {
      // A release that never went live is removed so rollback never picks it.
      await fsp.rm(dir, { recursive: true, force: true });
      throw e;
    }
    if (live) await atomicSymlink(`releases/${live}`, ctx.L.previous);
    const pruned = await pruneReleases(ctx.L, keep);
    for (const p of pruned) ctx.log(`pruned releases/${p}`);
    return { status: 'deployed', release: name, previous: live, inputHash: m.input.sha256, outputHash: outHash, started, pruned, ...pendingOf(m) };
  });
}

/**
 * Resolve `--to`. Ids: the full release name or its sequence number (`7`, `#7`, `0007`).
 * Prefixes (at least 4 characters): of a name, an output hash or an input hash. Anything
 * that matches more than one release is refused with the candidates listed.
 */
export async function selectRelease(L: Layout, to: string | undefined, live: string | null): Promise<string> {
  const names = await releaseNames(L);
  if (to !== undefined) {
    const want = to.trim();
    if (names.includes(want)) return want;
    const found = new Set<string>();
    const seqText = /^#?(\d{1,9})$/.exec(want)?.[1];
    if (seqText !== undefined) for (const n of names) if (releaseSeq(n) === Number(seqText) && releaseSeq(n) !== 0) found.add(n);
    const details = new Map<string, string>();
    if (want.length >= 4) {
      const lower = want.toLowerCase();
      for (const n of names) {
        const dir = path.join(L.releasesDir, n);
        const m = await readManifest(dir).catch(() => null);
        const out = m ? await outputHash(dir, m).catch(() => null) : null;
        details.set(n, `input ${m ? m.input.sha256.slice(0, 12) : '?'}, output ${out ? out.slice(0, 12) : '?'}`);
        if (n.startsWith(want) || (out && out.startsWith(lower)) || (m && m.input.sha256.startsWith(lower))) found.add(n);
      }
    }
    const cands = names.filter((n) => found.has(n));
    if (cands.length === 1) return cands[0]!;
    if (cands.length > 1) {
      throw new DeployError(
        'select',
        `"${to}" is ambiguous: it matches ${cands.length} releases; give the full name or its sequence number`,
        cands.map((n) => `${n}  (${details.get(n) ?? ''}${n === live ? ', live' : ''})`).join('\n'),
      );
    }
    throw new DeployError('select', `no release matches "${to}" (see \`gatewayctl releases\`)`);
  }
  const prev = await linkedRelease(L.previous);
  if (prev && prev !== live && names.includes(prev)) return prev;
  const i = live ? names.indexOf(live) : -1;
  if (i > 0) return names[i - 1]!;
  throw new DeployError('select', 'no previous release to roll back to');
}

export async function rollback(o: RollbackOptions): Promise<ActivationResult> {
  const ctx = await makeCtx(o);
  return withLock(ctx, 'rollback', async () => {
    const live = await linkedRelease(ctx.L.current);
    const to = await selectRelease(ctx.L, o.to, live);
    let m: BuildManifest;
    try {
      m = await readManifest(path.join(ctx.L.releasesDir, to));
    } catch (e) {
      throw new DeployError('build', e instanceof ManifestError ? e.message : String(e));
    }
    const bad = await verifyFiles(path.join(ctx.L.releasesDir, to), m);
    if (bad.length) throw new DeployError('build', `release ${to} was modified after deploy`, bad.join('\n'));
    const outHash = await outputHash(path.join(ctx.L.releasesDir, to), m);
    if (to === live) {
      return { status: 'unchanged', release: to, previous: await linkedRelease(ctx.L.previous), inputHash: m.input.sha256, outputHash: outHash, started: false, pruned: [] };
    }
    await preparePrefixDirs(ctx.L.prefix, ctx.nginx, m.prefixDirs);
    const { started } = await activate(ctx, to, live);
    if (live) await atomicSymlink(`releases/${live}`, ctx.L.previous);
    return { status: 'rolled-back', release: to, previous: live, inputHash: m.input.sha256, outputHash: outHash, started, pruned: [], ...pendingOf(m) };
  });
}

