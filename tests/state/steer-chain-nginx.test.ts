// Two steered stages in one request, through real nginx: a model on pool_x then pool_y, each
// with one server's breaker open, so both stages of its fallback chain pick a server in njs
// (the steer pick's fast path, $gw_steer_fast). pool_x's remaining server answers 503, which the
// chain falls back on: the second stage must pick among pool_y's servers, not reuse what nginx
// worked out for the first stage's upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startProject, type Project } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, waitUntil } from '../support/http.ts';
import { closeAll, deadPort, startEchoUpstream, startFixedStatusUpstream, type EchoUpstream, type FixedStatusUpstream } from '../support/upstreams.ts';

let x503: FixedStatusUpstream;
let good: EchoUpstream;
let project: Project;
let port: number;
let statusPort: number;

beforeAll(async () => {
  x503 = await startFixedStatusUpstream('x503', 503);
  good = await startEchoUpstream({ id: 'good' });
  [port, statusPort] = await freePorts(2);
  const breaker = '{ failures: 1, window: 30s, open_for: 60s, on: [502] }';
  const yaml = `
version: 1
global:
  worker_processes: 1
  status: { listen: "127.0.0.1:${statusPort}" }
listeners:
  - { name: public, address: 127.0.0.1, port: ${port} }
upstreams:
  pool_x: { servers: ["${x503.address}", "127.0.0.1:${await deadPort()}"], circuit_breaker: ${breaker} }
  pool_y: { servers: ["127.0.0.1:${await deadPort()}", "${good.address}"], circuit_breaker: ${breaker} }
models:
  - { id: both, pools: [pool_x, pool_y], fallback: { on: [error, 503] } }
routes:
  - { name: x, match: { prefix: /x/ }, upstream: pool_x, strip_prefix: true }
  - { name: y, match: { prefix: /y/ }, upstream: pool_y, strip_prefix: true }
  - { name: chat, match: { exact: /v1/chat/completions }, models: route }
`;
  project = await startProject({ 'gateway.yaml': yaml }, [port, statusPort]);
});

afterAll(async () => {
  await project?.stop();
  await stopAllGateways();
  await closeAll([x503, good]);
});

const chat = () => send({ port, method: 'POST', path: '/v1/chat/completions', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'both', messages: [] }) });
const flag = (u: string) => path.join(project.gw.prefix, 'state', `steer-${u}`);

describe('a fallback chain whose two stages are both steered', () => {
  it('the second stage picks among its own pool\'s servers', async () => {
    await withErrorLog(project.gw, async () => {
      // open the breaker of each pool's dead server (a refused connection is a 502 try)
      for (const [p, u] of [['/x/a', 'pool_x'], ['/y/a', 'pool_y']]) {
        for (let i = 0; i < 4 && !existsSync(flag(u)); i++) await send({ port, path: p });
        await waitUntil(() => existsSync(flag(u)), 5000, `${u} to be steered`);
      }
      const before = x503.hits;
      for (let i = 0; i < 4; i++) {
        const r = await chat();
        expect(r.status, r.text).toBe(200);
        expect(r.headers['x-upstream-id']).toBe('good');
      }
      // each request tried pool_x's remaining server first (503: the chain moved on)
      expect(x503.hits - before).toBe(4);
    });
  });
});
