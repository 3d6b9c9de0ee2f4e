// A release is proven on shadow ports before it takes traffic: one that is not ready is
// refused while the live release keeps serving every request (clients in their own process).

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deploy, DeployError } from '../../src/deploy/deploy.ts';
import { locateNginx, nginxStart, preparePrefixDirs, runningMaster, stopMaster } from '../../src/deploy/nginx.ts';
import { proveRelease } from '../../src/deploy/shadow.ts';
import { pidAlive } from '../../src/runtime/nginx/index.ts';
import { readyHash, reloadSignals, startLoadClient, tempDir, writeFixture } from './helpers.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

describe('proving a release on shadow ports', () => {
  it('refuses a release that fails readiness without a single failed live request', { timeout: 60_000 }, async () => {
    const up: EchoUpstream = await startEchoUpstream({ id: 'A' });
    cleanup.push(() => up.close());
    const root = await tempDir('prove');
    const target = path.join(root, 'target');
    cleanup.push(() => fsp.rm(root, { recursive: true, force: true }));
    cleanup.push(() => stopMaster(path.join(target, 'run', 'nginx.pid')));
    const port = await freePort();
    const log: string[] = [];
    const v1 = await writeFixture(path.join(root, 'v1'), { label: 'v1', port, upstreamPort: up.port });
    await deploy({ from: v1.dir, target, readyTimeoutMs: 10_000 });
    expect(await readyHash(port)).toBe(v1.hash);

    // The bad release answers 503 on /ready and on every proxied request.
    const bad = await writeFixture(path.join(root, 'bad'), { label: 'bad', port, upstreamPort: up.port, notReady: true });
    const client = await startLoadClient(port, 30, 150);
    cleanup.push(async () => client.kill());
    await new Promise((r) => setTimeout(r, 300));
    const signals = reloadSignals(target);
    const started = Date.now();
    let err: unknown = null;
    try {
      await deploy({ from: bad.dir, target, readyTimeoutMs: 2_000, log: (l) => log.push(l) });
    } catch (e) {
      err = e;
    }
    const res = await client.result;

    expect(err).toBeInstanceOf(DeployError);
    const de = err as DeployError;
    expect(de.step).toBe('prove');
    expect(de.message).toMatch(/readiness failed on shadow ports \(127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+\): .* \(last: HTTP 503\)/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000); // it really waited for readiness
    expect(log.join('\n')).toMatch(new RegExp(`proving the release on shadow ports \\(127\\.0\\.0\\.1:${port} → 127\\.0\\.0\\.1:\\d+\\)`));
    expect(reloadSignals(target)).toBe(signals); // the live master was never reloaded

    const failures = [...res.fresh.failures, ...res.keepAlive.failures];
    expect(failures, failures.join('\n')).toEqual([]);
    expect(res.fresh.ok + res.keepAlive.ok).toBe(300);
    expect(Object.keys({ ...res.fresh.releases, ...res.keepAlive.releases })).toEqual(['v1']);
    expect(res.sse.error).toBeNull();
    expect(res.sse.ids).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(await readyHash(port)).toBe(v1.hash);
    expect(fs.readdirSync(path.join(target, 'releases'))).toHaveLength(1);
  });
});

describe('proveRelease', () => {
  it('retries with fresh ports when a picked shadow port is taken before nginx binds it, and clears a stale shadow', { timeout: 60_000 }, async () => {
    const up: EchoUpstream = await startEchoUpstream({ id: 'A' });
    cleanup.push(() => up.close());
    const root = await tempDir('prove-retry');
    cleanup.push(() => fsp.rm(root, { recursive: true, force: true }));
    const port = await freePort();
    const v1 = await writeFixture(path.join(root, 'v1'), { label: 'v1', port, upstreamPort: up.port });
    const nginx = await locateNginx();
    const shadowRoot = path.join(root, 'shadow');

    // A shadow master left behind by a killed deploy (it even holds the release's port).
    await preparePrefixDirs(shadowRoot, nginx, []);
    const stale = await nginxStart(nginx, shadowRoot, path.join(v1.dir, 'nginx.conf'));
    expect(stale.ok, stale.output).toBe(true);
    const stalePid = (await runningMaster(path.join(shadowRoot, 'run', 'nginx.pid')))!;
    cleanup.push(async () => pidAlive(stalePid) && process.kill(stalePid, 'SIGKILL'));

    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => blocker.close(r)));
    const taken = (blocker.address() as net.AddressInfo).port;
    const picks = [taken];
    const log: string[] = [];
    const res = await proveRelease({
      nginx,
      releaseDir: v1.dir,
      shadowRoot,
      prefixDirs: [],
      readiness: { path: '/ready', listen: `127.0.0.1:${port}` },
      health: '/health',
      expectedHash: v1.hash,
      timeoutMs: 5_000,
      log: (l) => log.push(l),
      allocatePort: async () => picks.shift() ?? freePort(),
    });
    expect(res, log.join('\n')).toMatchObject({ ok: true });
    expect(pidAlive(stalePid)).toBe(false);
    expect(log.filter((l) => l.startsWith('proving the release'))).toEqual([
      `proving the release on shadow ports (127.0.0.1:${port} → 127.0.0.1:${taken})`,
      expect.stringMatching(new RegExp(`^proving the release on shadow ports \\(127\\.0\\.0\\.1:${port} → 127\\.0\\.0\\.1:(?!${taken}\\))\\d+\\)$`)),
    ]);
    expect(fs.existsSync(shadowRoot)).toBe(false);
  });
});
