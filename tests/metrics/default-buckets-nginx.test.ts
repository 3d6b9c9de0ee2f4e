// The default histogram bounds (5 ms … 60 s) through real nginx: njs places a request by
// comparisons held in code for them (njs/lib/metrics.ts bucketIndex), not by reading the
// bounds from text as it does for configured ones (tests/metrics/metrics-nginx.test.ts). Requests
// the upstream holds for known times land in exactly the buckets above those times.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BUCKETS } from '../../src/features/metrics/index.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, sendCounted, sleep } from '../support/http.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';

let upstream: EchoUpstream;
let project: Project;
let port: number;
let statusPort: number;

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'app' });
  [port, statusPort] = await freePorts(2);
  const yaml = `
version: 1
global:
  worker_processes: 1
  status: { listen: "127.0.0.1:${statusPort}" }
listeners:
  - { name: public, address: 127.0.0.1, port: ${port} }
upstreams:
  app: { servers: ["${upstream.address}"] }
routes:
  - { name: timed, match: { prefix: /timed/ }, upstream: app, strip_prefix: true }
metrics: {}
`;
  project = await startProject({ 'gateway.yaml': yaml }, [port, statusPort]);
});

afterAll(async () => {
  await project?.stop();
  await upstream?.close();
  await stopAllGateways();
});

async function buckets(): Promise<Map<string, number>> {
  const res = await sendCounted({ port: statusPort, path: '/metrics' });
  expect(res.status, res.text).toBe(200);
  const out = new Map<string, number>();
  for (const line of res.text.split('\n')) {
    const m = /^gatewayctl_(request|upstream_response)_duration_seconds_bucket\{route="timed",le="([^"]+)"\} (\d+)$/.exec(line);
    if (m) out.set(`${m[1]} ${m[2]}`, Number(m[3]));
  }
  return out;
}

describe('default histogram bounds through real nginx', () => {
  it('puts each request in the first default bucket at or above the time the upstream held it', async () => {
    await withErrorLog(project.gw, async () => {
      // held for: 0 ms (first bucket), 30 ms (above 0.025), 120 ms (above 0.1), 300 ms (above 0.25), 1.1 s (above 1)
      const held = [0, 30, 120, 300, 1100];
      for (const ms of held) expect((await send({ port, path: `/timed/slow?ms=${ms}` })).status).toBe(200);
      let b = await buckets();
      for (let i = 0; i < 50 && b.get('request +Inf') !== held.length; i++) {
        await sleep(100);
        b = await buckets();
      }
      // each request's own times as nginx measured them (the JSON access log: the same
      // $request_time and $upstream_response_time the log-phase call reads); on a loaded
      // machine a request held 0 ms can take more than 5 ms, so the expected bucket comes from
      // the time taken, not from the time held
      type Entry = { uri: string; request_time: number; upstream_response_time: string };
      const entries = project.gw
        .accessLog()
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Entry)
        .filter((e) => e.uri.startsWith('/timed/'));
      expect(entries).toHaveLength(held.length);
      const times = { request: entries.map((e) => e.request_time), upstream_response: entries.map((e) => Number(e.upstream_response_time)) };
      // le has the configured bounds as Prometheus prints them, then +Inf
      const les = [...DEFAULT_BUCKETS.map(String), '+Inf'];
      const bucketOf = (t: number) => {
        const i = DEFAULT_BUCKETS.findIndex((bound) => t <= bound);
        return i < 0 ? DEFAULT_BUCKETS.length : i;
      };
      for (const fam of ['request', 'upstream_response'] as const) {
        const got = les.map((le) => b.get(`${fam} ${le}`));
        // cumulative: bucket i counts the requests whose bucket is i or below
        const want = les.map((_, i) => times[fam].filter((t) => bucketOf(t) <= i).length);
        expect(got, `${fam}: le ${les.join(' ')}, times ${times[fam].join(' ')}`).toEqual(want);
        // the held times spread the requests over several buckets, each above its hold
        expect(new Set(times[fam].map(bucketOf)).size, fam).toBeGreaterThanOrEqual(4);
        times[fam].forEach((t, i) => expect(t * 1000 + 1, fam).toBeGreaterThanOrEqual(held[i]));
      }
    });
  });
});
