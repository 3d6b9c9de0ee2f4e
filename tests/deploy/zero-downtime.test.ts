// Zero failed requests across repeated deploys: steady traffic plus one long SSE stream
// through nginx while deploying four times (v2, v3, a refused broken release, v4).

import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { deploy, DeployError } from '../../src/deploy/deploy.ts';
import { stopMaster } from '../../src/deploy/nginx.ts';
import { freePort, readyHash, startEchoUpstream, tempDir, writeFixture, type EchoUpstream, type LoadStats } from './helpers.ts';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('zero-downtime deploys', () => {
  it('keeps every request and an SSE stream intact while deploying repeatedly', { timeout: 90_000 }, async () => {
    const ups: EchoUpstream[] = [];
    for (const id of ['A', 'B']) ups.push(await startEchoUpstream({ id }));
    cleanup.push(async () => Promise.all(ups.map((u) => u.close())));
    const root = await tempDir('zd');
    const target = path.join(root, 'target');
    cleanup.push(() => fsp.rm(root, { recursive: true, force: true }));
    cleanup.push(() => stopMaster(path.join(target, 'run', 'nginx.pid')));
    const port = await freePort();
    const build = (label: string, up: EchoUpstream, serverExtra?: string) =>
      writeFixture(path.join(root, label), { label, port, upstreamPort: up.port, serverExtra });
    const log: string[] = [];
    const doDeploy = (dir: string) => deploy({ from: dir, target, log: (l) => log.push(l), readyTimeoutMs: 10_000 });

    const v1 = await build('v1', ups[0]!);
    await doDeploy(v1.dir);
    expect(await readyHash(port)).toBe(v1.hash);

    // Clients run in their own process: one long SSE stream (60 events, 100 ms apart, ~6 s)
    // and 400 requests (200 on fresh connections, 200 on keep-alive connections).
    const EVENTS = 60;
    const client = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./load-client.ts', import.meta.url)), String(port), String(EVENTS), '200'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanup.push(async () => client.exitCode === null && client.kill('SIGKILL'));
    let out = '';
    client.stdout!.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      client.stdout!.on('data', (c: string) => {
        out += c;
        if (out.includes('started\n')) resolve();
      });
      client.on('exit', (code) => reject(new Error(`load client exited early (${code}): ${out}`)));
    });
    const finished = new Promise<number | null>((r) => client.on('exit', (code) => r(code)));

    await sleep(500);
    const deployed: string[] = [v1.hash];
    const plan: [string, EchoUpstream, string?][] = [
      ['v2', ups[1]!],
      ['v3', ups[0]!],
      ['broken', ups[1]!, '    bogus_directive on;\n'],
      ['v4', ups[1]!],
    ];
    for (const [label, up, extra] of plan) {
      const b = await build(label, up, extra);
      if (extra) {
        await expect(doDeploy(b.dir)).rejects.toBeInstanceOf(DeployError);
      } else {
        await doDeploy(b.dir);
        deployed.push(b.hash);
        expect(await readyHash(port)).toBe(b.hash);
      }
      await sleep(700);
    }

    expect(await finished).toBe(0);
    type Stats = Omit<LoadStats, 'releases'> & { releases: Record<string, number> };
    const res = JSON.parse(out.slice(out.indexOf('started\n') + 8).trim()) as {
      fresh: Stats;
      keepAlive: Stats;
      sse: { ids: number[]; status: number; error: string | null };
      elapsed: number;
    };
    const [a, k, sse, elapsed] = [res.fresh, res.keepAlive, res.sse, res.elapsed];

    console.log(
      `zero-downtime: ${a.ok + k.ok} ok, ${a.failed + k.failed} failed, keep-alive retries ${k.retried.length} (${k.retried.join('; ')}), ` +
        `SSE events ${sse.ids.length}, releases seen ${[...new Set([...Object.keys(a.releases), ...Object.keys(k.releases)])].join(',')}, ${elapsed} ms`,
    );
    const failures = [...a.failures.map((f) => `fresh ${f}`), ...k.failures.map((f) => `keep-alive ${f}`)];
    expect(failures, failures.join('\n')).toEqual([]);
    // Fresh connections never need a retry. Keep-alive requests may find their idle
    // connection closed by a retiring worker (at most one per connection and reload).
    expect(a.retried).toEqual([]);
    expect(k.retried.length).toBeLessThanOrEqual(2 * 3);
    expect(a.ok + k.ok).toBe(400);
    expect(elapsed).toBeGreaterThan(3000); // traffic really spanned the deploys
    // Traffic reached more than one release, and the last one at the end.
    const seen = new Set([...Object.keys(a.releases), ...Object.keys(k.releases)]);
    expect(seen.size).toBeGreaterThanOrEqual(2);
    expect(seen.has('v4')).toBe(true);

    expect(sse.error).toBeNull();
    expect(sse.status).toBe(200);
    expect(sse.ids).toEqual(Array.from({ length: EVENTS }, (_, i) => i + 1));
    expect(deployed).toHaveLength(4);
  });
});
