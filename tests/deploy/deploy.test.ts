// deploy / rollback / releases through a real nginx (project runtime), with hand-written
// fixture builds proxying to Node upstreams.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { run as runDeploy } from '../../src/commands/deploy.ts';
import { run as runReleases } from '../../src/commands/releases.ts';
import { run as runRollback } from '../../src/commands/rollback.ts';
import { deploy, DeployError, rollback } from '../../src/deploy/deploy.ts';
import { acquireLock } from '../../src/deploy/lock.ts';
import { stopMaster } from '../../src/deploy/nginx.ts';
import { layout, listReleases } from '../../src/deploy/releases.ts';
import { readyHash, reloadSignals, steadyLoad, tempDir, writeFixture } from './helpers.ts';
import { fileMode } from '../support/files.ts';
import { get } from '../support/http.ts';
import { capture } from '../support/capture.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';

let upA: EchoUpstream;
let upB: EchoUpstream;
const targets: string[] = [];

beforeAll(async () => {
  upA = await startEchoUpstream({ id: 'A' });
  upB = await startEchoUpstream({ id: 'B' });
});

afterEach(async () => {
  for (const t of targets.splice(0)) {
    await stopMaster(path.join(t, 'run', 'nginx.pid'));
    await fsp.rm(path.dirname(t), { recursive: true, force: true });
  }
});

afterAll(async () => {
  await upA?.close();
  await upB?.close();
});

interface Env {
  root: string;
  target: string;
  port: number;
  log: string[];
  build(label: string, o?: { upstream?: EchoUpstream; serverExtra?: string; httpExtra?: string; extraFiles?: Record<string, string> }): Promise<{ dir: string; hash: string }>;
  deploy(from: string, extra?: { keep?: number; readyTimeoutMs?: number }): ReturnType<typeof deploy>;
  rollback(to?: string): ReturnType<typeof rollback>;
}

async function env(): Promise<Env> {
  const root = await tempDir('deploy');
  const target = path.join(root, 'target');
  targets.push(target);
  const port = await freePort();
  const log: string[] = [];
  let n = 0;
  return {
    root,
    target,
    port,
    log,
    build: (label, o = {}) =>
      writeFixture(path.join(root, `build-${++n}`), {
        label,
        port,
        upstreamPort: (o.upstream ?? upA).port,
        serverExtra: o.serverExtra,
        httpExtra: o.httpExtra,
        extraFiles: o.extraFiles,
      }),
    deploy: (from, extra = {}) => deploy({ from, target, log: (l) => log.push(l), readyTimeoutMs: 8000, ...extra }),
    rollback: (to) => rollback({ target, to, log: (l) => log.push(l), readyTimeoutMs: 8000 }),
  };
}

async function caught<T>(p: Promise<T>): Promise<DeployError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DeployError) return e;
    throw e;
  }
  throw new Error('expected a DeployError');
}

function upstreamOf(body: string): string {
  return (JSON.parse(body) as { id: string }).id;
}


describe('deploy', () => {
  it('starts nginx on the first deploy, then switches traffic to v2 and /ready reports the new hash', async () => {
    const e = await env();
    const v1 = await e.build('v1', { upstream: upA });
    const r1 = await e.deploy(v1.dir);
    expect(r1.status).toBe('deployed');
    expect(r1.started).toBe(true);
    expect(r1.release).toMatch(new RegExp(`^0001-\\d{8}T\\d{6}\\.\\d{3}Z-${r1.outputHash.slice(0, 12)}$`));
    expect(await readyHash(e.port)).toBe(v1.hash);
    expect(upstreamOf((await get(e.port, '/x')).body)).toBe('A');
    expect(fs.readlinkSync(path.join(e.target, 'current'))).toBe(`releases/${r1.release}`);

    const v2 = await e.build('v2', { upstream: upB });
    const r2 = await e.deploy(v2.dir);
    expect(r2).toMatchObject({ status: 'deployed', started: false, previous: r1.release });
    expect(await readyHash(e.port)).toBe(v2.hash);
    const res = await get(e.port, '/x');
    expect(upstreamOf(res.body)).toBe('B');
    expect(res.headers['x-release']).toBe('v2');
    expect(fs.readlinkSync(path.join(e.target, 'previous'))).toBe(`releases/${r1.release}`);

    // Release contents match the build byte for byte.
    for (const f of ['nginx.conf', 'conf.d/40-servers.conf', 'manifest.json']) {
      expect(fs.readFileSync(path.join(e.target, 'releases', r2.release, f), 'utf8')).toBe(fs.readFileSync(path.join(v2.dir, f), 'utf8'));
    }
  });

  it('detects a no-op deploy and does nothing', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    const r1 = await e.deploy(v1.dir);
    const before = fs.readdirSync(path.join(e.target, 'releases'));
    const r2 = await e.deploy(v1.dir);
    expect(r2).toMatchObject({ status: 'unchanged', release: r1.release, started: false });
    expect(fs.readdirSync(path.join(e.target, 'releases'))).toEqual(before);

    const out = await capture(() => runDeploy({ from: v1.dir, target: e.target, quiet: true }));
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/already live; nothing to do/);

    // Same build while nginx is down: still a no-op for the release, but nginx is started.
    await stopMaster(path.join(e.target, 'run', 'nginx.pid'));
    expect(await readyHash(e.port)).toBeNull();
    const r3 = await e.deploy(v1.dir);
    expect(r3).toMatchObject({ status: 'unchanged', release: r1.release, started: true });
    expect(await readyHash(e.port)).toBe(v1.hash);

    // A changed file with the same input hash is not a no-op.
    fs.appendFileSync(path.join(v1.dir, 'conf.d', '30-upstreams.conf'), '# edited\n');
    const bad = await caught(e.deploy(v1.dir));
    expect(bad.step).toBe('build');
    expect(bad.detail).toMatch(/30-upstreams.conf: checksum differs/);
  });

  it('refuses a release nginx -t rejects; the old one keeps serving without a failed request', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    const r1 = await e.deploy(v1.dir);
    const load = steadyLoad(e.port, { total: 100_000, concurrency: 3, pauseMs: 10 });
    await new Promise((r) => setTimeout(r, 300));
    const broken = await e.build('broken', { serverExtra: '    bogus_directive on;\n' });
    const err = await caught(e.deploy(broken.dir));
    await new Promise((r) => setTimeout(r, 300));
    const stats = await load.stop();
    expect(err.step).toBe('test');
    expect(err.detail).toMatch(/unknown directive "bogus_directive"/);
    expect(stats.failed, stats.failures.join('\n')).toBe(0);
    expect(stats.ok).toBeGreaterThan(20);
    expect(await readyHash(e.port)).toBe(v1.hash);
    expect(fs.readlinkSync(path.join(e.target, 'current'))).toBe(`releases/${r1.release}`);
    // The refused release is not kept around as a rollback candidate.
    expect(fs.readdirSync(path.join(e.target, 'releases'))).toEqual([r1.release]);

    const out = await capture(() => runDeploy({ from: broken.dir, target: e.target, quiet: true }));
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/deploy failed at step "nginx -t"/);
    expect(out.stderr).toMatch(/unknown directive/);
  });

  it('rolls back a release that passes nginx -t but cannot be applied (listen port taken)', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    const r1 = await e.deploy(v1.dir);
    const blockerPort = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(blockerPort, '127.0.0.1', r));
    try {
      const load = steadyLoad(e.port, { total: 100_000, concurrency: 3, pauseMs: 10 });
      const bad = await e.build('v2-port-taken', { upstream: upB, httpExtra: `server {\n    listen 127.0.0.1:${blockerPort};\n    return 204;\n}\n` });
      const signals = reloadSignals(e.target);
      const err = await caught(e.deploy(bad.dir));
      const stats = await load.stop();
      // It passes on shadow ports (its listen addresses are remapped there), then the live
      // nginx refuses it. That refusal keeps the old configuration running: one reload only.
      expect(e.log.join('\n')).toMatch(/answered on shadow ports/);
      expect(err.step).toBe('reload');
      expect(err.refused).toBe(true);
      expect(err.message).toMatch(/bind\(\) to 127\.0\.0\.1:\d+ failed \(98: Address already in use\)/);
      expect(err.recovery).toMatch(new RegExp(`restored ${r1.release}; nginx refused the new configuration and kept serving it`));
      expect(reloadSignals(e.target)).toBe(signals + 1);
      expect(stats.failed, stats.failures.join('\n')).toBe(0);
      expect(fs.readlinkSync(path.join(e.target, 'current'))).toBe(`releases/${r1.release}`);
      expect(await readyHash(e.port)).toBe(v1.hash);
      expect(upstreamOf((await get(e.port, '/x')).body)).toBe('A');

      // nginx is healthy afterwards: the next good deploy goes through.
      const v3 = await e.build('v3', { upstream: upB });
      await e.deploy(v3.dir);
      expect(await readyHash(e.port)).toBe(v3.hash);
    } finally {
      blocker.close();
    }
  });

  it('refuses a release whose /ready never reports its hash before it takes traffic', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    const r1 = await e.deploy(v1.dir);
    // /ready keeps answering v1's hash: the manifest claims something nginx never serves.
    const lying = await e.build('v2-wrong-ready', { upstream: upB });
    const conf = path.join(lying.dir, 'conf.d', '40-servers.conf');
    const text = fs.readFileSync(conf, 'utf8').replace(lying.hash, v1.hash);
    fs.writeFileSync(conf, text);
    const man = JSON.parse(fs.readFileSync(path.join(lying.dir, 'manifest.json'), 'utf8'));
    man.files['conf.d/40-servers.conf'] = (await import('node:crypto')).createHash('sha256').update(text).digest('hex');
    fs.writeFileSync(path.join(lying.dir, 'manifest.json'), JSON.stringify(man));
    const signals = reloadSignals(e.target);
    const err = await caught(e.deploy(lying.dir, { readyTimeoutMs: 1500 }));
    expect(err.step).toBe('prove');
    expect(err.message).toMatch(/was not switched live: readiness failed on shadow ports .*did not report config/);
    expect(err.message).toMatch(new RegExp(`shadow ports \\(127\\.0\\.0\\.1:${e.port} → 127\\.0\\.0\\.1:\\d+\\)`));
    expect(err.recovery).toBeNull();
    // The live nginx was never touched: no reload, same release, same upstream.
    expect(reloadSignals(e.target)).toBe(signals);
    expect(fs.readlinkSync(path.join(e.target, 'current'))).toBe(`releases/${r1.release}`);
    expect(fs.readdirSync(path.join(e.target, 'releases'))).toEqual([r1.release]);
    expect(fs.existsSync(path.join(e.target, 'shadow'))).toBe(false);
    expect(upstreamOf((await get(e.port, '/x')).body)).toBe('A');
  });

  it('a failed first deploy leaves nothing running', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    const conf = path.join(v1.dir, 'conf.d', '40-servers.conf');
    // Passes nginx -t, fails at start: the listen port is taken.
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(e.port, '127.0.0.1', r));
    try {
      expect(fs.existsSync(conf)).toBe(true);
      const err = await caught(e.deploy(v1.dir));
      expect(err.step).toBe('start');
      expect(err.detail).toMatch(/Address already in use/);
      expect(err.recovery).toMatch(/no previous release/);
      expect(fs.existsSync(path.join(e.target, 'current'))).toBe(false);
      expect(fs.readdirSync(path.join(e.target, 'releases'))).toEqual([]);
    } finally {
      blocker.close();
    }
  });
});

describe('rollback and releases', () => {
  it('returns to the previous release, toggles back, and selects by hash prefix', async () => {
    const e = await env();
    const v1 = await e.build('v1', { upstream: upA });
    const v2 = await e.build('v2', { upstream: upB });
    const v3 = await e.build('v3', { upstream: upA });
    const r1 = await e.deploy(v1.dir);
    const r2 = await e.deploy(v2.dir);

    const rb = await e.rollback();
    expect(rb).toMatchObject({ status: 'rolled-back', release: r1.release, previous: r2.release });
    expect(await readyHash(e.port)).toBe(v1.hash);
    expect(upstreamOf((await get(e.port, '/x')).body)).toBe('A');

    const back = await e.rollback();
    expect(back.release).toBe(r2.release);
    expect(await readyHash(e.port)).toBe(v2.hash);

    const r3 = await e.deploy(v3.dir);
    const to = await e.rollback(v1.hash.slice(0, 10));
    expect(to.release).toBe(r1.release);
    expect(await readyHash(e.port)).toBe(v1.hash);

    expect((await e.rollback(r1.release)).status).toBe('unchanged');
    const missing = await caught(e.rollback('nope'));
    expect(missing.step).toBe('select');

    const list = await listReleases(layout(e.target));
    expect(list.map((r) => r.name)).toEqual([r1.release, r2.release, r3.release]);
    expect(list.find((r) => r.live)?.name).toBe(r1.release);
    expect(list.find((r) => r.previous)?.name).toBe(r3.release);
    expect(list.map((r) => r.inputHash)).toEqual([v1.hash, v2.hash, v3.hash]);

    const json = await capture(() => runReleases({ target: e.target, json: true }));
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { name: string; live: boolean; inputHash: string; time: string }[];
    expect(parsed[0]!.name).toBe(r3.release); // newest first
    expect(parsed.filter((r) => r.live).map((r) => r.name)).toEqual([r1.release]);
    expect(Date.parse(parsed[0]!.time)).not.toBeNaN();

    const text = await capture(() => runReleases({ target: e.target }));
    expect(text.stdout).toMatch(new RegExp(`\\* +${r1.release.replace('.', '\\.')} .* live`));
    expect(text.stdout).toMatch(/previous/);

    const cmd = await capture(() => runRollback({ target: e.target, quiet: true }));
    expect(cmd.code).toBe(0);
    expect(cmd.stdout).toMatch(`rolled back to ${r3.release}`);
  });

  it('prunes to --keep, never the live or previous release', async () => {
    const e = await env();
    const names: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const b = await e.build(`v${i}`, { upstream: i % 2 ? upA : upB });
      names.push((await e.deploy(b.dir, { keep: 2 })).release);
    }
    expect(fs.readdirSync(path.join(e.target, 'releases')).sort()).toEqual([names[3], names[4]]);

    // Roll back to v4, then deploy v6 with keep 1: v6 is live, v4 previous, both stay.
    await e.rollback();
    const b6 = await e.build('v6');
    const r6 = await e.deploy(b6.dir, { keep: 1 });
    expect(fs.readdirSync(path.join(e.target, 'releases')).sort()).toEqual([names[3], r6.release].sort());
    expect(r6.pruned).toEqual([names[4]]);
  });
});

describe('deploy target guard', () => {
  /** Every entry under dir: files with content, directories, links with their target. */
  function snapshot(dir: string): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (rel: string) => {
      for (const d of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${d.name}` : d.name;
        const p = path.join(dir, r);
        if (d.isSymbolicLink()) out[r] = `-> ${fs.readlinkSync(p)}`;
        else if (d.isDirectory()) {
          out[r] = '<dir>';
          walk(r);
        } else out[r] = fs.readFileSync(p, 'utf8');
      }
    };
    walk('');
    return out;
  }

  it('refuses a non-empty directory that is not a deploy target, for deploy and rollback; nothing is touched', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    await fsp.mkdir(path.join(e.target, 'data'), { recursive: true });
    await fsp.writeFile(path.join(e.target, 'gateway.yaml'), 'version: 1\n');
    await fsp.writeFile(path.join(e.target, 'data/notes.txt'), 'notes\n');
    const before = snapshot(e.target);
    const err = await caught(e.deploy(v1.dir));
    expect(err.step).toBe('lock');
    expect(err.message).toMatch(/GW610 refusing to replace deploy target .*: it is not empty and is not a gatewayctl deploy target \(no releases\/ directory\)/);
    expect((await caught(e.rollback())).message).toMatch(/GW610/);
    expect(snapshot(e.target)).toEqual(before);
  });

  it('refuses a releases/ holding foreign entries and a `current` that is not a link', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    await fsp.mkdir(path.join(e.target, 'releases/v1.0'), { recursive: true });
    await fsp.writeFile(path.join(e.target, 'releases/v1.0/app.tar'), 'x');
    let before = snapshot(e.target);
    expect((await caught(e.deploy(v1.dir))).message).toMatch(/releases\/ holds entries gatewayctl did not create: v1\.0/);
    expect(snapshot(e.target)).toEqual(before);
    await fsp.rm(path.join(e.target, 'releases/v1.0'), { recursive: true });
    await fsp.writeFile(path.join(e.target, 'current'), 'mine\n');
    before = snapshot(e.target);
    expect((await caught(e.deploy(v1.dir))).message).toMatch(/current is not a symbolic link to a release/);
    expect(snapshot(e.target)).toEqual(before);
  });

  it('deploys into an empty existing directory, and again into its own deploy target', async () => {
    const e = await env();
    await fsp.mkdir(e.target, { recursive: true });
    const r1 = await e.deploy((await e.build('v1')).dir);
    expect(r1.status).toBe('deployed');
    const v2 = await e.build('v2', { upstream: upB });
    const r2 = await e.deploy(v2.dir);
    expect(r2).toMatchObject({ status: 'deployed', previous: r1.release });
    expect(await readyHash(e.port)).toBe(v2.hash);
  });
});

describe('release ids', () => {
  /** The same input (same input hash) with a different output, as before/after `tls issue`. */
  async function sameInputOtherOutput(dir: string, into: string): Promise<string> {
    await fsp.cp(dir, into, { recursive: true });
    const conf = path.join(into, 'conf.d', '40-servers.conf');
    const text = fs.readFileSync(conf, 'utf8').replace('location = /health {', 'location = /health {\n        add_header x-variant b always;');
    fs.writeFileSync(conf, text);
    const man = JSON.parse(fs.readFileSync(path.join(into, 'manifest.json'), 'utf8'));
    man.files['conf.d/40-servers.conf'] = (await import('node:crypto')).createHash('sha256').update(text).digest('hex');
    fs.writeFileSync(path.join(into, 'manifest.json'), JSON.stringify(man, null, 2));
    return into;
  }

  it('numbers releases, reuses an identical older release, and refuses ambiguous --to prefixes', async () => {
    const e = await env();
    const v1 = await e.build('v1', { upstream: upA });
    const v2 = await e.build('v2', { upstream: upB });
    const r1 = await e.deploy(v1.dir);
    const r2 = await e.deploy(v2.dir);
    expect(r1.release).toMatch(/^0001-/);
    expect(r2.release).toMatch(/^0002-/);

    // Back to v1 by deploying the same build again: no duplicate folder, release 0001 is live.
    const again = await e.deploy(v1.dir);
    expect(again).toMatchObject({ status: 'deployed', reused: true, release: r1.release, previous: r2.release });
    expect(fs.readdirSync(path.join(e.target, 'releases')).sort()).toEqual([r1.release, r2.release]);
    expect(fs.readlinkSync(path.join(e.target, 'current'))).toBe(`releases/${r1.release}`);
    expect(upstreamOf((await get(e.port, '/x')).body)).toBe('A');
    expect((await e.deploy(v1.dir)).status).toBe('unchanged');
    const rebuilt = await e.build('v1', { upstream: upA }); // an identical rebuild elsewhere
    expect(await e.deploy(rebuilt.dir)).toMatchObject({ status: 'unchanged', release: r1.release });

    // Same input hash, different output: a new release with its own id.
    const v1b = await sameInputOtherOutput(v1.dir, path.join(e.root, 'v1b'));
    const r3 = await e.deploy(v1b);
    expect(r3.status).toBe('deployed');
    expect(r3.reused).toBeUndefined();
    expect(r3.release).toMatch(/^0003-/);
    expect(r3.inputHash).toBe(r1.inputHash);
    expect(r3.outputHash).not.toBe(r1.outputHash);
    expect(r3.release.endsWith(r3.outputHash.slice(0, 12))).toBe(true);

    // The input-hash prefix now names two releases: refused, candidates listed.
    const amb = await caught(e.rollback(v1.hash.slice(0, 8)));
    expect(amb.step).toBe('select');
    expect(amb.message).toMatch(/is ambiguous: it matches 2 releases/);
    expect(amb.detail).toContain(r1.release);
    expect(amb.detail).toContain(r3.release);
    expect(fs.readlinkSync(path.join(e.target, 'current'))).toBe(`releases/${r3.release}`);
    const cli = await capture(() => runRollback({ target: e.target, to: v1.hash.slice(0, 8), quiet: true }));
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/ambiguous/);
    expect(cli.stderr).toContain(r1.release);

    // Unique ids: the sequence number, the full name, an output-hash prefix.
    expect((await e.rollback('#1')).release).toBe(r1.release);
    expect((await e.rollback('3')).release).toBe(r3.release);
    expect((await e.rollback(r2.outputHash.slice(0, 10))).release).toBe(r2.release);
    expect((await e.rollback(r1.release)).release).toBe(r1.release);
    expect((await caught(e.rollback('9'))).message).toMatch(/no release matches/);

    const json = await capture(() => runReleases({ target: e.target, json: true }));
    const parsed = JSON.parse(json.stdout) as { name: string; seq: number; inputHash: string; outputHash: string }[];
    expect(parsed.map((r) => r.seq)).toEqual([3, 2, 1]);
    expect(parsed.map((r) => r.outputHash)).toEqual([r3.outputHash, r2.outputHash, r1.outputHash]);
    const text = await capture(() => runReleases({ target: e.target }));
    expect(text.stdout).toMatch(/RELEASE +TIME \(UTC\) +INPUT +OUTPUT/);
    expect(text.stdout).toContain(r3.outputHash.slice(0, 12));
  });

  it('keeps releases named by older versions usable and numbers new ones after them', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    const r1 = await e.deploy(v1.dir);
    // Rename it the way older versions named releases (<time>-<input hash 12>).
    const legacy = `20261101T000000.000Z-${v1.hash.slice(0, 12)}`;
    fs.renameSync(path.join(e.target, 'releases', r1.release), path.join(e.target, 'releases', legacy));
    fs.rmSync(path.join(e.target, 'current'));
    fs.symlinkSync(`releases/${legacy}`, path.join(e.target, 'current'));
    expect((await e.deploy(v1.dir)).status).toBe('unchanged');
    const v2 = await e.build('v2', { upstream: upB });
    const r2 = await e.deploy(v2.dir);
    expect(r2.release).toMatch(/^0001-/);
    expect((await e.rollback()).release).toBe(legacy);
    expect((await listReleases(layout(e.target))).map((r) => r.name)).toEqual([legacy, r2.release]);
  });
});

describe('deploy lock', () => {
  it('refuses a second concurrent deploy', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    await e.deploy(v1.dir);
    const v2 = await e.build('v2', { upstream: upB });
    const v3 = await e.build('v3');
    const results = await Promise.allSettled([e.deploy(v2.dir), e.deploy(v3.dir)]);
    const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toBeInstanceOf(DeployError);
    expect((failed[0]!.reason as DeployError).step).toBe('lock');
    expect((failed[0]!.reason as DeployError).message).toMatch(/another deploy holds .*deploy\.lock \(pid \d+, deploy/);
    expect(fs.existsSync(path.join(e.target, 'deploy.lock'))).toBe(false);

    // A lock held by a live process (this one) refuses deploys and rollbacks.
    const held = await acquireLock(path.join(e.target, 'deploy.lock'), 'test');
    try {
      expect((await caught(e.deploy(v3.dir))).step).toBe('lock');
      expect((await caught(e.rollback())).step).toBe('lock');
    } finally {
      await held.release();
    }
  });

  it('a deploy process holding the lock blocks others until it dies; its lock is then stale', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    await fsp.mkdir(e.target, { recursive: true });
    const lockFile = path.join(e.target, 'deploy.lock');
    // Another process takes the lock with the real acquireLock and hangs (a stuck deploy).
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '-e', `const { acquireLock } = await import(${JSON.stringify(fileURLToPath(new URL('../../src/deploy/lock.ts', import.meta.url)))}); await acquireLock(${JSON.stringify(lockFile)}, 'deploy'); console.log('locked'); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (c: Buffer) => c.toString().includes('locked') && resolve());
        child.on('exit', (code) => reject(new Error(`lock holder exited early (${code})`)));
      });
      const busy = await caught(e.deploy(v1.dir));
      expect(busy.step).toBe('lock');
      expect(busy.message).toContain(`pid ${child.pid}, deploy`);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    expect(fs.existsSync(lockFile)).toBe(true); // killed holders leave their lock behind
    const r = await e.deploy(v1.dir);
    expect(r.status).toBe('deployed');
    expect(e.log.join('\n')).toMatch(new RegExp(`removed stale deploy lock .*pid ${child.pid} .*is not running`));
  });

  it('replaces a stale lock left by a dead process, with a message', async () => {
    const e = await env();
    const v1 = await e.build('v1');
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid!;
    await fsp.mkdir(e.target, { recursive: true });
    fs.writeFileSync(path.join(e.target, 'deploy.lock'), JSON.stringify({ pid: dead, time: '2020-01-01T00:00:00.000Z', command: 'deploy' }));
    const r = await e.deploy(v1.dir);
    expect(r.status).toBe('deployed');
    expect(e.log.join('\n')).toMatch(new RegExp(`removed stale deploy lock .*pid ${dead} from 2020-01-01T00:00:00.000Z is not running`));
    expect(fs.existsSync(path.join(e.target, 'deploy.lock'))).toBe(false);
  });
});

describe('--reload-cmd', () => {
  it('reloads through a user command (as with systemctl reload nginx) and reports its failure', async () => {
    const e = await env();
    const v1 = await e.build('v1', { upstream: upA });
    const v2 = await e.build('v2', { upstream: upB });
    const r1 = await e.deploy(v1.dir);
    const pidFile = path.join(e.target, 'run', 'nginx.pid');
    const reloadCmd = `kill -HUP "$(cat '${pidFile}')"`;
    const r2 = await deploy({ from: v2.dir, target: e.target, reloadCmd, readyTimeoutMs: 8000, log: (l) => e.log.push(l) });
    expect(r2.status).toBe('deployed');
    expect(e.log.join('\n')).toContain(`reloading with: ${reloadCmd}`);
    expect(upstreamOf((await get(e.port, '/x')).body)).toBe('B');

    const v3 = await e.build('v3');
    const err = await caught(deploy({ from: v3.dir, target: e.target, reloadCmd: 'echo "unit nginx.service not loaded" >&2; exit 5', readyTimeoutMs: 3000 }));
    expect(err.step).toBe('reload');
    expect(err.message).toMatch(/reload command failed \(exit 5\)/);
    expect(err.detail).toContain('unit nginx.service not loaded');
    // The link is back on v2 even though the same command cannot reload it either.
    expect(fs.readlinkSync(path.join(e.target, 'current'))).toBe(`releases/${r2.release}`);
    expect(err.recovery).toMatch(/restored the current link to .*, but reload nginx failed/);
    expect(await readyHash(e.port)).toBe(v2.hash);
    expect(r1.release).not.toBe(r2.release);
  });
});

describe('--reload-cmd and a refused reload', () => {
  it('does not reload a second time when nginx refused the release the command reloaded', async () => {
    const e = await env();
    const v1 = await e.build('v1', { upstream: upA });
    const r1 = await e.deploy(v1.dir);
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    try {
      const taken = (blocker.address() as net.AddressInfo).port;
      const bad = await e.build('v2-port-taken', { upstream: upB, httpExtra: `server {\n    listen 127.0.0.1:${taken};\n    return 204;\n}\n` });
      const pidFile = path.join(e.target, 'run', 'nginx.pid');
      const signals = reloadSignals(e.target);
      const err = await caught(deploy({ from: bad.dir, target: e.target, reloadCmd: `kill -HUP "$(cat '${pidFile}')"`, readyTimeoutMs: 8000 }));
      expect(err.step).toBe('reload');
      expect(err.refused).toBe(true);
      expect(err.message).toMatch(/Address already in use/);
      expect(err.recovery).toMatch(new RegExp(`restored ${r1.release}; nginx refused the new configuration and kept serving it`));
      expect(reloadSignals(e.target)).toBe(signals + 1);
      expect(upstreamOf((await get(e.port, '/x')).body)).toBe('A');
    } finally {
      blocker.close();
    }
  });
});

describe('TLS readiness', () => {
  it('probes /ready over https when the readiness listener is a TLS listener', async () => {
    const e = await env();
    const dir = path.join(e.root, 'pki');
    fs.mkdirSync(dir);
    const openssl = path.resolve(fileURLToPath(new URL('../../.runtime/bin/openssl', import.meta.url)));
    const gen = spawnSync(openssl, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { encoding: 'utf8' });
    expect(gen.status, gen.stderr).toBe(0);
    const tls = { cert: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8'), key: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8') };
    const v1 = await writeFixture(path.join(e.root, 'tls-v1'), { label: 'v1', port: e.port, upstreamPort: upA.port, tls });
    const v2 = await writeFixture(path.join(e.root, 'tls-v2'), { label: 'v2', port: e.port, upstreamPort: upB.port, tls });
    await e.deploy(v1.dir);
    const r2 = await e.deploy(v2.dir);
    expect(r2.status).toBe('deployed');
    expect(e.log.join('\n')).toContain(`waiting for https://127.0.0.1:${e.port}/ready`);
    expect(fileMode(path.join(e.target, 'releases', r2.release, 'tls/server.key'))).toBe(0o600);
    expect(fileMode(path.join(e.target, 'releases', r2.release, 'tls/server.crt'))).toBe(0o644);
  });
});

describe('release file modes', () => {
  it('keeps secret-like files 0600 and the rest 0644', async () => {
    const e = await env();
    const key = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';
    const b = await e.build('v1', {
      extraFiles: {
        'tls/server.key': key,
        'tls/bundle.pem': key,
        'tls/chain.pem': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
        'njs/secrets.json': '{"hmac":"s3cret"}\n',
        'njs/api-keys.json': '{"keys":[]}\n',
        'njs/auth.js': 'export default {};\n',
      },
    });
    const r = await e.deploy(b.dir);
    const rel = (f: string) => fileMode(path.join(e.target, 'releases', r.release, f));
    expect(rel('tls/server.key')).toBe(0o600);
    expect(rel('tls/bundle.pem')).toBe(0o600);
    expect(rel('njs/secrets.json')).toBe(0o600);
    expect(rel('njs/api-keys.json')).toBe(0o600);
    expect(rel('tls/chain.pem')).toBe(0o644);
    expect(rel('njs/auth.js')).toBe(0o644);
    expect(rel('nginx.conf')).toBe(0o644);
    expect(rel('manifest.json')).toBe(0o644);
  });
});
