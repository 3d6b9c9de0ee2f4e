// Placement and fallbacks through real nginx + njs, with the official `openai` SDK as the client:
// a model on ordered pools moves on when the first is down, a 429 moves it on only when the
// model says so (else the pool's own 429 reaches the client as sent), a fallback to another
// model reaches that model's pool with the body's `model` rewritten, every pool failing is a 503
// `upstream_unavailable`, a stream that already started is never retried (the client sees the
// cut, the next pool's request log stays empty), weighted pools split by weight, max_conns caps
// the connections to a server (the rest overflow to the next pool), and the deadline stops the
// chain. `gatewayctl route` explains the same chain.
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQuery } from '../../src/routing/explain.ts';
import { freePort } from '../support/ports.ts';
import { withErrorLog } from '../support/nginx.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { send } from '../support/http.ts';
import { startOpenAiUpstream, type OpenAiUpstream } from '../support/openai-upstream.ts';
import { closeAll, deadPort, startEchoUpstream, startFixedStatusUpstream, type EchoUpstream, type FixedStatusUpstream } from '../support/upstreams.ts';

let project: Project;
let port: number;
let poolB: OpenAiUpstream; // answers every chat completion
let small: OpenAiUpstream; // serves model small-model
let busy: FixedStatusUpstream; // answers 429
let echo: Record<string, EchoUpstream> = {};

const yaml = (dead: number[]) => `version: 1
global: { status: false, worker_processes: 1 }
listeners:
  - { name: main, port: ${port}, address: 127.0.0.1 }
upstreams:
  dead_pool: { servers: ["127.0.0.1:${dead[0]}"] }
  dead_too: { servers: ["127.0.0.1:${dead[1]}"] }
  dead3: { servers: ["127.0.0.1:${dead[2]}"] }
  dead4: { servers: ["127.0.0.1:${dead[3]}"] }
  dead5: { servers: ["127.0.0.1:${dead[4]}"] }
  dead6: { servers: ["127.0.0.1:${dead[5]}"] }
  busy: { servers: [${busy.address}] }
  pool_b: { servers: [${poolB.address}] }
  small: { servers: [${small.address}] }
  sse_a: { servers: [${echo.sseA.address}] }
  sse_b: { servers: [${echo.sseB.address}] }
  w1: { servers: [${echo.w1.address}] }
  w2: { servers: [${echo.w2.address}] }
  capped: { max_conns: 2, servers: [${echo.capped.address}] }
  overflow: { servers: [${echo.overflow.address}] }
  slow1: { servers: [${echo.slow1.address}] }
  slow2: { servers: [${echo.slow2.address}] }
  slow3: { servers: [${echo.slow3.address}] }
models:
  - { id: down-then-b, pools: [dead_pool, pool_b] }
  - { id: busy-then-b, upstream: busy, fallback: { to: [{ upstream: pool_b }], on: [error, timeout, 429] } }
  - { id: busy-stays, upstream: busy, fallback: { to: [{ upstream: pool_b }] } }
  - { id: to-small, upstream: dead_pool, fallback: { to: [{ model: small-model }] } }
  - { id: small-model, upstream: small }
  - { id: down-model, upstream: dead_too }
  - { id: two-hops, upstream: dead_pool, fallback: { to: [{ model: down-model }, { model: small-model }] } }
  - { id: all-down, pools: [dead_pool, dead_too] }
  - { id: six-down, pools: [dead_pool, dead_too, dead3, dead4, dead5, dead6] }
  - { id: stream-cut, pools: [sse_a, sse_b] }
  - { id: weighted, pools: [{ upstream: w1, weight: 9 }, { upstream: w2, weight: 1 }] }
  - { id: capped, pools: [capped, overflow] }
  - { id: slow-chain, pools: [slow1, slow2, slow3], fallback: { deadline: 1500ms } }
  - { id: slow-nodeadline, pools: [slow1, slow2, slow3] }
routes:
  - { name: chat, match: { exact: /v1/chat/completions, methods: [POST] }, models: route, streaming: true }
  - { name: sse, match: { exact: /sse, methods: [POST] }, models: route, streaming: true }
  - { name: slow, match: { exact: /slow/v1/chat/completions, methods: [POST] }, models: route, timeouts: { read: 1s } }
`;

const client = (base = '/v1') => new OpenAI({ apiKey: 'unused', baseURL: `http://127.0.0.1:${port}${base}`, maxRetries: 0, timeout: 20_000 });
const ask = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });
const post = (path: string, model: string) =>
  send({ port, method: 'POST', path, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ask(model)), timeoutMs: 20_000 });

beforeAll(async () => {
  port = await freePort();
  poolB = await startOpenAiUpstream('b');
  small = await startOpenAiUpstream('small');
  busy = await startFixedStatusUpstream('busy', 429);
  for (const id of ['sseA', 'sseB', 'w1', 'w2', 'overflow']) echo[id] = await startEchoUpstream({ id });
  echo.capped = await startEchoUpstream({ id: 'capped', delayMs: 400 });
  for (const id of ['slow1', 'slow2', 'slow3']) echo[id] = await startEchoUpstream({ id, delayMs: 3000 });
  const dead: number[] = [];
  for (let i = 0; i < 6; i++) dead.push(await deadPort());
  project = await startProject({ 'gateway.yaml': yaml(dead) }, [port]);
});

afterAll(async () => {
  await project?.stop();
  await Promise.all([poolB?.close(), small?.close(), busy?.close()]);
  await closeAll(Object.values(echo));
});

describe('a model on several pools, and fallbacks', () => {
  it('pool A down: pool B answers (openai SDK)', async () => {
    await withErrorLog(project.gw, async () => {
      const before = poolB.requests.length;
      const r = await client().chat.completions.create(ask('down-then-b'));
      expect(r.choices[0].message.content).toBe('answer from b');
      expect(r.model).toBe('down-then-b');
      expect(poolB.requests.length).toBe(before + 1);
      expect(JSON.parse(poolB.requests.at(-1)!.body).messages).toEqual([{ role: 'user', content: 'hi' }]);
    });
  });

  it('pool A down, streamed: pool B streams the whole answer (the move happens before any byte)', async () => {
    await withErrorLog(project.gw, async () => {
      const before = poolB.requests.length;
      const s = await client().chat.completions.create({ ...ask('down-then-b'), stream: true });
      let text = '';
      for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
      expect(text).toBe('answer from b');
      expect(poolB.requests.length).toBe(before + 1);
    });
  });

  it('pool A answers 429 and the model falls back on 429: pool B answers', async () => {
    await withErrorLog(project.gw, async () => {
      busy.resetHits();
      const r = await client().chat.completions.create(ask('busy-then-b'));
      expect(r.choices[0].message.content).toBe('answer from b');
      expect(busy.hits).toBe(1);
    });
  });

  it('a 429 the model does not fall back on reaches the client as the pool sent it', async () => {
    await withErrorLog(project.gw, async () => {
      const before = poolB.requests.length;
      const r = await post('/v1/chat/completions', 'busy-stays');
      expect(r.status).toBe(429);
      expect(r.headers['x-upstream-id']).toBe('busy');
      expect((r.json as { status: number }).status).toBe(429); // the pool's own body
      expect(poolB.requests.length).toBe(before);
    });
  });

  it('a fallback to another model reaches its pool with the body\'s model rewritten', async () => {
    await withErrorLog(project.gw, async () => {
      const r = await client().chat.completions.create(ask('to-small'));
      expect(r.model).toBe('small-model');
      expect(r.choices[0].message.content).toBe('answer from small');
      const got = JSON.parse(small.requests.at(-1)!.body);
      expect(got).toEqual({ ...ask('to-small'), model: 'small-model' });
      expect(small.requests.at(-1)!.headers['content-length']).toBe(String(Buffer.byteLength(small.requests.at(-1)!.body)));
    });
  });

  it('two fallbacks to models in a row: each stage sends its own model id', async () => {
    await withErrorLog(project.gw, async () => {
      const r = await client().chat.completions.create(ask('two-hops'));
      expect(r.model).toBe('small-model');
      expect(JSON.parse(small.requests.at(-1)!.body).model).toBe('small-model');
    });
  });

  it('every pool failed: 503 upstream_unavailable in the OpenAI shape (APIError)', async () => {
    await withErrorLog(project.gw, async () => {
      const e = await client().chat.completions.create(ask('all-down')).then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(APIError);
      const err = e as APIError;
      expect(err.status).toBe(503);
      expect(err.code).toBe('upstream_unavailable');
      expect(err.type).toBe('server_error');
      expect(err.headers?.get('x-request-id')).toMatch(/^[0-9a-f]{32}$/);
    });
  });

  it('the longest chain the rules allow (6 pools, all down) still ends in the 503, within nginx\'s redirect limit', async () => {
    await withErrorLog(project.gw, async () => {
      const r = await post('/v1/chat/completions', 'six-down');
      expect(r.status).toBe(503);
      expect(r.json).toEqual({ error: { message: 'no upstream serving this model could answer', type: 'server_error', param: null, code: 'upstream_unavailable' } });
    });
  });

  it('a stream that already started is never retried: the client sees the cut, pool B gets nothing', async () => {
    await withErrorLog(project.gw, async () => {
      echo.sseA.resetHits();
      echo.sseB.resetHits();
      const res = await fetch(`http://127.0.0.1:${port}/sse?events=6&intervalMs=100&cutAfter=2`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ...ask('stream-cut'), stream: true }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-upstream-id')).toBe('sseA');
      const reader = res.body!.getReader();
      let text = '';
      let cut = false;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString('utf8');
        }
      } catch {
        cut = true; // the chunked body ended without its last chunk
      }
      expect(cut, `stream ended cleanly: ${text}`).toBe(true);
      expect(text.match(/^id: \d+$/gm)).toEqual(['id: 1', 'id: 2']);
      expect(text).not.toContain('sseB');
      expect(echo.sseA.hits).toBe(1);
      expect(echo.sseB.requests, 'the next pool never saw the request').toEqual([]);
    });
  });

  it('weighted pools split 9:1 within a few percent over 1000 requests', async () => {
    await withErrorLog(project.gw, async () => {
      echo.w1.resetHits();
      echo.w2.resetHits();
      for (let i = 0; i < 50; i++) {
        const rs = await Promise.all(Array.from({ length: 20 }, () => post('/v1/chat/completions', 'weighted')));
        expect(rs.every((r) => r.status === 200)).toBe(true);
      }
      expect(echo.w1.hits + echo.w2.hits).toBe(1000);
      expect(Math.abs(echo.w2.hits - 100), `w2 got ${echo.w2.hits} of 1000`).toBeLessThanOrEqual(35);
    });
  });

  it('max_conns caps the concurrent connections to a server; the rest overflow to the next pool', async () => {
    await withErrorLog(project.gw, async () => {
      echo.capped.resetHits();
      echo.overflow.resetHits();
      const rs = await Promise.all(Array.from({ length: 8 }, () => post('/v1/chat/completions', 'capped')));
      expect(rs.map((r) => r.status)).toEqual(Array(8).fill(200));
      expect(echo.capped.peakInFlight).toBe(2);
      expect(echo.capped.hits).toBeGreaterThanOrEqual(2);
      expect(echo.capped.hits + echo.overflow.hits).toBe(8);
      expect(echo.overflow.hits).toBeGreaterThanOrEqual(1);
    });
  });

  it('the deadline stops the chain: no new pool is tried once the request is that old', async () => {
    await withErrorLog(project.gw, async () => {
      for (const u of ['slow1', 'slow2', 'slow3']) echo[u].resetHits();
      // each pool times out after 1 s (read timeout): without a deadline all three are tried
      const t0 = Date.now();
      const all = await post('/slow/v1/chat/completions', 'slow-nodeadline');
      const fullMs = Date.now() - t0;
      expect(all.status).toBe(503);
      expect([echo.slow1.hits, echo.slow2.hits, echo.slow3.hits]).toEqual([1, 1, 1]);
      for (const u of ['slow1', 'slow2', 'slow3']) echo[u].resetHits();
      // deadline 1500ms: the first pool fails at ~1 s, the second starts and fails at ~2 s, the third is never tried
      const t1 = Date.now();
      const r = await post('/slow/v1/chat/completions', 'slow-chain');
      const ms = Date.now() - t1;
      expect(r.status).toBe(503);
      expect((r.json as { error: { code: string } }).error.code).toBe('upstream_unavailable');
      expect([echo.slow1.hits, echo.slow2.hits, echo.slow3.hits]).toEqual([1, 1, 0]);
      // the proof is the third pool's empty log; the times only confirm it (one try fewer)
      expect(fullMs).toBeGreaterThanOrEqual(2900);
      expect(ms).toBeLessThan(fullMs);
    });
  });
});

describe('gatewayctl route: placement notes', () => {
  it('names the first pool, the split and what follows', async () => {
    const { compile } = await import('../../src/build/compile.ts');
    const path = await import('node:path');
    const r = compile(path.join(project.dir, 'gateway.yaml'), {});
    const q = resolveQuery(r.model!, { model: 'to-small' });
    expect(q.upstream).toBe('dead_pool');
    expect(q.notes).toEqual([
      'model to-small → upstream dead_pool',
      'before the first response byte, on error, timeout: then upstream small as model small-model; all failed: 503 upstream_unavailable',
    ]);
    const w = resolveQuery(r.model!, { model: 'weighted' });
    expect(w.notes[0]).toBe('model weighted → pools by weight: w1 90%, w2 10% (explained below: w1)');
    expect(w.notes[1]).toContain('then the next pool of the split (w1/w2)');
  });
});
