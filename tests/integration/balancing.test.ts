// Load balancing through real nginx: round-robin and weighted spread, least_conn prefers the
// idle server while another holds a slow request.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.ts';
import { closeAll, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { send, waitUntil } from '../support/http.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const YAML = `
version: 1
global:
  worker_processes: 1
  status: false
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
upstreams:
  rr:
    servers: ["127.0.0.1:\${UP_1}", "127.0.0.1:\${UP_2}", "127.0.0.1:\${UP_3}"]
  weighted:
    balance: weighted
    servers:
      - { address: "127.0.0.1:\${UP_4}", weight: 1 }
      - { address: "127.0.0.1:\${UP_5}", weight: 3 }
  lc:
    balance: least_conn
    servers: ["127.0.0.1:\${UP_6}", "127.0.0.1:\${UP_7}"]
routes:
  - name: rr
    match: { prefix: /rr/ }
    upstream: rr
    strip_prefix: true
  - name: weighted
    match: { prefix: /weighted/ }
    upstream: weighted
    strip_prefix: true
  - name: lc
    match: { prefix: /lc/ }
    upstream: lc
    strip_prefix: true
`;

let ups: EchoUpstream[] = [];
let g: BuiltGateway;
let port: number;

beforeAll(async () => {
  ups = await startUpstreams(7, { idPrefix: 'u' });
  port = await freePort();
  const env: Record<string, string> = { PORT_GW: String(port) };
  ups.forEach((u, i) => (env[`UP_${i + 1}`] = String(u.port)));
  g = await buildAndStart({ configPath: path.join(HERE, 'balancing.gateway.yaml'), text: YAML, env, ports: [port] });
});

afterAll(async () => {
  await g?.stop();
  await closeAll(ups);
  await stopAllGateways();
});

/** Send n sequential GETs and count answers per X-Upstream-Id. */
async function spread(pathname: string, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await send({ port, path: pathname });
    expect(res.status, `${pathname} #${i + 1}: ${res.text}`).toBe(200);
    const id = String(res.headers['x-upstream-id']);
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}

describe('balancing', () => {
  it('round_robin spreads 60 requests evenly over 3 servers', async () => {
    await withErrorLog(g.gw, async () => {
      const counts = await spread('/rr/x', 60);
      expect(Object.keys(counts).sort()).toEqual(['u1', 'u2', 'u3']);
      for (const id of ['u1', 'u2', 'u3']) {
        expect(counts[id], `${id} in ${JSON.stringify(counts)}`).toBeGreaterThanOrEqual(18);
        expect(counts[id], `${id} in ${JSON.stringify(counts)}`).toBeLessThanOrEqual(22);
      }
    });
  });

  it('weighted 1:3 spreads 80 requests proportionally', async () => {
    await withErrorLog(g.gw, async () => {
      const counts = await spread('/weighted/x', 80);
      expect(Object.keys(counts).sort()).toEqual(['u4', 'u5']);
      expect(counts.u4, JSON.stringify(counts)).toBeGreaterThanOrEqual(16);
      expect(counts.u4, JSON.stringify(counts)).toBeLessThanOrEqual(24);
      expect(counts.u5, JSON.stringify(counts)).toBeGreaterThanOrEqual(56);
      expect(counts.u5, JSON.stringify(counts)).toBeLessThanOrEqual(64);
    });
  });

  it('least_conn sends new requests to the idle server while the other holds a slow one', async () => {
    await withErrorLog(g.gw, async () => {
      const [a, b] = [ups[5], ups[6]];
      a.resetHits();
      b.resetHits();
      const slow = send({ port, path: '/lc/slow?ms=2500', timeoutMs: 10_000 });
      await waitUntil(() => a.hits + b.hits === 1, 5_000, 'the slow request to reach an upstream');
      const busy = a.hits === 1 ? a : b;
      const idle = busy === a ? b : a;
      const counts = await spread('/lc/fast', 8);
      expect(counts, `busy=${busy.id} idle=${idle.id}`).toEqual({ [idle.id]: 8 });
      const res = await slow;
      expect(res.status).toBe(200);
      expect(res.headers['x-upstream-id']).toBe(busy.id);
      expect(busy.hits).toBe(1);
      // with both idle again, least_conn spreads over both
      const after = await spread('/lc/fast', 4);
      expect(Object.keys(after).sort(), JSON.stringify(after)).toEqual(['u6', 'u7']);
    });
  });
});
