// consistent_hash on a header through real nginx: a key stays on one server, and removing one
// of four servers remaps only the keys that were on it (about a quarter).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.ts';
import { closeAll, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { send } from '../support/http.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const KEYS = Array.from({ length: 300 }, (_, i) => `user-${i}-${(i * 7919) % 1000}`);

const yaml = (servers: string[]) => `
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
    servers: [${servers.map((s) => `"127.0.0.1:\${${s}}"`).join(', ')}]
routes:
  - name: sessions
    match: { prefix: / }
    upstream: sessions
`;

let ups: EchoUpstream[] = [];
let four: BuiltGateway;
let three: BuiltGateway;

async function start(servers: string[], env: Record<string, string>): Promise<BuiltGateway> {
  const port = await freePort();
  return buildAndStart({
    configPath: path.join(HERE, 'hashing.gateway.yaml'),
    text: yaml(servers),
    env: { ...env, PORT_GW: String(port) },
    ports: [port],
  });
}

/** key → upstream id for every key, sent through `g`. */
async function assignments(g: BuiltGateway, keys: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const port = g.gw.ports[0];
  for (const k of keys) {
    const res = await send({ port, path: '/session', headers: { 'X-User': k } });
    expect(res.status, res.text).toBe(200);
    out.set(k, String(res.headers['x-upstream-id']));
  }
  return out;
}

beforeAll(async () => {
  ups = await startUpstreams(4, { idPrefix: 'h' });
  const env: Record<string, string> = {};
  ups.forEach((u, i) => (env[`UP_${i + 1}`] = String(u.port)));
  // Two builds: all four servers, and the same list without the fourth.
  [four, three] = await Promise.all([start(['UP_1', 'UP_2', 'UP_3', 'UP_4'], env), start(['UP_1', 'UP_2', 'UP_3'], env)]);
});

afterAll(async () => {
  await four?.stop();
  await three?.stop();
  await closeAll(ups);
  await stopAllGateways();
});

describe('consistent_hash on a header', () => {
  it('keeps each key on one server and uses every server', async () => {
    await withErrorLog(four.gw, async () => {
      const first = await assignments(four, KEYS.slice(0, 60));
      const again = await assignments(four, KEYS.slice(0, 60));
      expect(again).toEqual(first);
      expect(new Set(first.values()).size).toBe(4);
    });
  });

  it('removing one of four servers remaps only the keys that were on it (about 1/4)', async () => {
    await withErrorLog(four.gw, async () => {
      const before = await assignments(four, KEYS);
      const after = await assignments(three, KEYS);
      const removed = ups[3].id;
      const onRemoved = KEYS.filter((k) => before.get(k) === removed);
      const moved = KEYS.filter((k) => before.get(k) !== after.get(k));
      // exactly the keys of the removed server moved; none of the others did
      expect(moved.sort()).toEqual(onRemoved.sort());
      expect([...after.values()]).not.toContain(removed);
      // and that is roughly a quarter of the keys
      const share = moved.length / KEYS.length;
      expect(share, `${moved.length} of ${KEYS.length} keys moved`).toBeGreaterThan(0.1);
      expect(share, `${moved.length} of ${KEYS.length} keys moved`).toBeLessThan(0.42);
    });
  });

  it('requests without the header still succeed (fallback spread)', async () => {
    await withErrorLog(four.gw, async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 24; i++) {
        const res = await send({ port: four.gw.ports[0], path: '/anon' });
        expect(res.status).toBe(200);
        seen.add(String(res.headers['x-upstream-id']));
      }
      // hash_fallback defaults to a random spread: more than one server is used
      expect(seen.size).toBeGreaterThan(1);
    });
  });
});
