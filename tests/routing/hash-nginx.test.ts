// `gatewayctl route`'s explanation (src/routing/explain.ts → ketama.ts) against what real nginx
// does with the compiled config: the same peer for a few hundred header keys, only the removed
// peer's keys move, a dead peer's keys go to the predicted ring successor and come back after
// fail_timeout, and weights shift shares as predicted.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explainRoute } from '../../src/routing/explain.ts';
import { freePort } from '../support/ports.ts';
import { closeAll, startEchoUpstream, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { send, sleep } from '../support/http.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const KEYS = Array.from({ length: 300 }, (_, i) => `user-${i}-${(i * 7919) % 1009}`);

// servers: [env var, weight]
const yaml = (servers: [string, number][]) => `
version: 1
global:
  worker_processes: 1
  status: false
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
upstreams:
  sessions:
    balance: consistent_hash
    hash_key: { header: X-User }
    max_fails: 1
    fail_timeout: 2s
    keepalive: 0
    servers:
${servers.map(([v, w]) => `      - { address: "127.0.0.1:\${${v}}", weight: ${w} }`).join('\n')}
routes:
  - name: sessions
    match: { prefix: / }
    upstream: sessions
`;

let ups: EchoUpstream[] = [];
const env: Record<string, string> = {};
const gateways: BuiltGateway[] = [];

async function start(servers: [string, number][]): Promise<BuiltGateway> {
  const port = await freePort();
  const g = await buildAndStart({ configPath: path.join(HERE, 'hash.gateway.yaml'), text: yaml(servers), env: { ...env, PORT_GW: String(port) }, ports: [port] });
  gateways.push(g);
  return g;
}

const idOf = (addr: string) => ups.find((u) => u.address === addr)!.id;

async function actual(g: BuiltGateway, keys: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const k of keys) {
    const res = await send({ port: g.gw.ports[0], path: '/s', headers: { 'X-User': k } });
    expect(res.status, res.text).toBe(200);
    out.set(k, String(res.headers['x-upstream-id']));
  }
  return out;
}

function predicted(g: BuiltGateway, keys: string[], unavailable: string[] = []): Map<string, string> {
  return new Map(keys.map((k) => [k, idOf(explainRoute(g.model, k, { unavailable }).peer!)]));
}

beforeAll(async () => {
  ups = await startUpstreams(4, { idPrefix: 'r' });
  ups.forEach((u, i) => (env[`UP_${i + 1}`] = String(u.port)));
});

afterAll(async () => {
  for (const g of gateways) await g.stop();
  await closeAll(ups);
  await stopAllGateways();
});

describe('consistent hash through nginx vs gatewayctl route', () => {
  it('every key lands where the explanation says, and stays there', async () => {
    const g = await start([['UP_1', 1], ['UP_2', 1], ['UP_3', 1], ['UP_4', 1]]);
    await withErrorLog(g.gw, async () => {
      const first = await actual(g, KEYS);
      expect(first).toEqual(predicted(g, KEYS));
      expect(await actual(g, KEYS.slice(0, 50))).toEqual(new Map(KEYS.slice(0, 50).map((k) => [k, first.get(k)!])));
      expect(new Set(first.values()).size).toBe(4);
    });
  });

  it('removing one of four peers remaps about 1/4 of the keys — exactly the removed peer\'s', async () => {
    const four = gateways[0];
    const three = await start([['UP_1', 1], ['UP_2', 1], ['UP_3', 1]]);
    await withErrorLog(three.gw, async () => {
      const before = await actual(four, KEYS);
      const after = await actual(three, KEYS);
      expect(after).toEqual(predicted(three, KEYS));
      const moved = KEYS.filter((k) => before.get(k) !== after.get(k));
      expect(moved.sort()).toEqual(KEYS.filter((k) => before.get(k) === ups[3].id).sort());
      expect(moved.length / KEYS.length).toBeGreaterThan(0.12);
      expect(moved.length / KEYS.length).toBeLessThan(0.4);
    });
  });

  it('weights shift the share of keys as predicted (1:1:2)', async () => {
    const g = await start([['UP_1', 1], ['UP_2', 1], ['UP_3', 2]]);
    await withErrorLog(g.gw, async () => {
      const got = await actual(g, KEYS);
      expect(got).toEqual(predicted(g, KEYS));
      const count = (id: string) => [...got.values()].filter((x) => x === id).length;
      const heavy = count(ups[2].id) / KEYS.length;
      expect(heavy, 'weight-2 server share').toBeGreaterThan(0.38);
      expect(heavy).toBeLessThan(0.62);
      const share = explainRoute(g.model, 'x').share[ups[2].address];
      expect(Math.abs(heavy - share), `observed ${heavy} vs ring share ${share}`).toBeLessThan(0.1);
    });
  });

  it('a dead peer\'s keys go to the predicted ring successor and come back after fail_timeout', async () => {
    const g = gateways[0];
    const dead = ups[1];
    await withErrorLog(g.gw, async () => {
      const healthy = await actual(g, KEYS);
      const victims = KEYS.filter((k) => healthy.get(k) === dead.id);
      expect(victims.length).toBeGreaterThan(20);
      // successors as `gatewayctl route` explains them
      for (const k of victims.slice(0, 5)) {
        const e = explainRoute(g.model, k);
        expect(e.peer).toBe(dead.address);
        expect(explainRoute(g.model, k, { unavailable: [dead.address] }).peer).toBe(e.successors[0]);
      }
      await dead.close();
      const during = await actual(g, KEYS); // the first failure is retried on the successor (proxy_next_upstream)
      expect(during).toEqual(predicted(g, KEYS, [dead.address]));
      for (const k of KEYS) if (healthy.get(k) !== dead.id) expect(during.get(k)).toBe(healthy.get(k));
      // bring it back on the same port; after fail_timeout (2s, counted in whole seconds by
      // nginx) the next request for one of its keys tries it again and readmits it
      ups[1] = await startEchoUpstream({ id: dead.id, port: dead.port });
      await sleep(3_200);
      await actual(g, victims.slice(0, 1)); // the probe request that readmits the peer
      expect(await actual(g, KEYS)).toEqual(healthy);
    });
  });
});
