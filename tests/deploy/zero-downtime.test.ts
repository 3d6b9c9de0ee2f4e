// Zero failed requests across repeated deploys: steady traffic plus one long SSE stream
// through nginx while deploying four times (v2, v3, a refused broken release, v4).

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deploy, DeployError } from '../../src/deploy/deploy.ts';
import { stopMaster } from '../../src/deploy/nginx.ts';
import { readyHash, startLoadClient, tempDir, writeFixture } from './helpers.ts';
import { sleep } from '../support/http.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

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
    const client = await startLoadClient(port, EVENTS, 200);
    cleanup.push(async () => client.kill());

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

    const res = await client.result; // rejects unless the load client exited 0
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
