// Token budgets and r/h windows through real nginx, with the official `openai` SDK as the client
// and a mock OpenAI-compatible upstream that keeps every request body it received. The budget is
// reserved before the upstream sees a byte (a refused request never reaches the mock), reconciled
// after the response with the usage the mock reported (non-streamed, streamed, and a stream the
// client cut: prompt estimate + the content deltas seen), include_usage is added for the
// accounting and hidden from a client that did not ask, clamp lowers max_tokens as the upstream
// sees it, and an r/h window refuses the (N+1)th request. Metrics are off: the shared log-phase
// call and body filter run for the budgets alone.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { send, sendCounted, sleep } from '../support/http.ts';
import { mockOptions, startOpenAiUpstream, type OpenAiUpstream } from '../support/openai-upstream.ts';
import { deadPort } from '../support/upstreams.ts';

const yaml = (port: number, upstream: string, dead: number) => `
version: 1
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  llm:
    servers: ["${upstream}"]
  down:
    servers: ["127.0.0.1:${dead}"]
models:
  - { id: gpt-4o, upstream: llm }
  - { id: primary, upstream: down, fallback: { to: [{ model: gpt-4o }] } }
auth:
  api_keys: { file: keys.yaml }
limits:
  tokens:
    per_client: { key: client_id, window: hour, tokens: 1000, default_max_tokens: 200 }
    clamped: { key: client_id, window: day, tokens: 300, on_exceed: clamp, min_tokens: 10 }
  rate:
    hourly: { key: client_id, rate: 3r/h }
    fast: { key: client_ip, rate: 100r/s, burst: 100 }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    auth: api_key
    streaming: true
    token_limits: [per_client]
  - name: clamp
    match: { exact: /clamp/v1/chat/completions, methods: [POST] }
    models: route
    auth: api_key
    token_limits: [clamped]
  - name: hourly
    match: { exact: /hourly/v1/chat/completions, methods: [POST] }
    models: route
    auth: api_key
    rate_limits: [hourly, fast]
`;

let mock: OpenAiUpstream;
let project: Project;
let port: number;
const keys: Record<string, string> = {};

beforeAll(async () => {
  mock = await startOpenAiUpstream('llm', { reply: 'words' });
  [port] = await freePorts(1);
  const store: KeyFile = { version: 1, keys: [] };
  for (const n of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) keys[n] = createKey(store, { name: n }, new Date()).key;
  project = await startProject({ 'gateway.yaml': yaml(port, mock.address, await deadPort()), 'keys.yaml': serializeKeys(store) }, [port]);
});

afterAll(async () => {
  await project?.stop();
  await mock?.close();
  await stopAllGateways();
});

const client = (key: string, base = '/v1') => new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port}${base}`, maxRetries: 0 });
const total = (u: { prompt_tokens: number; completion_tokens: number } | null | undefined) => (u ? u.prompt_tokens + u.completion_tokens : NaN);

/** what the budget says is left: a request that cannot fit is refused, and the refusal tells */
async function left(key: string, path = '/v1/chat/completions'): Promise<number> {
  const res = await send({
    port,
    method: 'POST',
    path,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], max_tokens: 100000000 }),
  });
  expect(res.status, res.text).toBe(429);
  return Number(res.headers['x-ratelimit-remaining-tokens']);
}

/** the log phase runs after the answer is sent: wait until the count moved from `from` */
async function leftAfter(key: string, from: number): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const n = await left(key);
    if (n !== from || Date.now() > deadline) return n;
    await sleep(50);
  }
}

describe('token budgets through real nginx', () => {
  it('counts exactly the usage the upstream reported, non-streamed and streamed (include_usage added and hidden)', async () => {
    await withErrorLog(project.gw, async () => {
      const c = client(keys.alice);
      expect(await left(keys.alice)).toBe(1000);
      // non-streamed: reserved 4 (13 characters / 4) + 17, reconciled to the mock's 10 + 17
      const a = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one two three' }], max_tokens: 17 });
      expect(a.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 17 });
      const afterA = await leftAfter(keys.alice, 1000 - 21);
      expect(afterA).toBe(1000 - total(a.usage));

      // streamed, without include_usage: the upstream was asked for it, the client never sees it
      const before = mock.requests.length;
      const s = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'stream me please' }], stream: true, ...mockOptions({ chunks: 6 }) });
      let text = '';
      const chunks: Record<string, unknown>[] = [];
      for await (const chunk of s) {
        chunks.push(chunk as unknown as Record<string, unknown>);
        text += chunk.choices[0]?.delta?.content ?? '';
      }
      expect(text).toBe(' word'.repeat(5));
      expect(mock.requests[before].json!.stream_options).toEqual({ include_usage: true });
      const reported = mock.requests[mock.requests.length - 1].answer.usage;
      expect(reported).toEqual({ prompt_tokens: 10, completion_tokens: 19, total_tokens: 29 });
      // no usage chunk, no "usage" member: what a client that did not ask gets from the upstream
      expect(chunks.length).toBe(6 + 1);
      expect(chunks.every((x) => !('usage' in x) && Array.isArray(x.choices) && (x.choices as unknown[]).length === 1)).toBe(true);
      const afterS = await leftAfter(keys.alice, afterA - (4 + 200));
      expect(afterS).toBe(afterA - total(reported));

      // the same with an upstream that writes JSON with spaces (Python's json.dumps)
      const sp = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'spaced out' }], stream: true, max_tokens: 5, ...mockOptions({ spaced: true, chunks: 3 }) });
      const spChunks: Record<string, unknown>[] = [];
      for await (const chunk of sp) spChunks.push(chunk as unknown as Record<string, unknown>);
      expect(spChunks.length).toBe(3 + 1);
      expect(spChunks.some((x) => 'usage' in x)).toBe(false);
      const afterSp = await leftAfter(keys.alice, afterS - (3 + 5));
      expect(afterSp).toBe(afterS - (9 + 5));

      // a client that asked for usage gets it as the upstream sent it
      const s2 = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'again' }], stream: true, stream_options: { include_usage: true }, max_tokens: 9 });
      let usage: OpenAI.CompletionUsage | null | undefined = null;
      for await (const chunk of s2) if (chunk.usage) usage = chunk.usage;
      expect(usage).toMatchObject({ prompt_tokens: 8, completion_tokens: 9 });
      expect(await leftAfter(keys.alice, afterSp - (2 + 9))).toBe(afterSp - 17);
    });
  });

  it('reconciles a stream the client cut with the prompt estimate and the content deltas seen', async () => {
    await withErrorLog(project.gw, async () => {
      const s = await client(keys.erin).chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'a long story please' }], // 19 characters: prompt estimate 5
        stream: true,
        max_tokens: 500,
        ...mockOptions({ chunks: 200, chunk_ms: 20 }),
      });
      let n = 0;
      for await (const _ of s) {
        if (++n === 4) {
          s.controller.abort();
          break;
        }
      }
      const deadline = Date.now() + 10_000;
      while (!mock.requests[mock.requests.length - 1].answer.aborted && Date.now() < deadline) await sleep(50);
      expect(mock.requests[mock.requests.length - 1].answer.aborted).toBe(true);
      expect(mock.requests[mock.requests.length - 1].answer.usage).toBeNull(); // the usage chunk never came
      const rest = await leftAfter(keys.erin, 1000 - (5 + 500));
      const counted = 1000 - rest;
      // the client saw 3 content deltas; the gateway may have seen a few more before the cut
      expect(counted).toBeGreaterThanOrEqual(5 + 3);
      expect(counted).toBeLessThan(5 + 200);
    });
  });

  it('reconciles a stream the upstream cut with exactly the prompt estimate and the content deltas it sent', async () => {
    await withErrorLog(project.gw, async () => {
      const key = keys.erin;
      const start = await left(key);
      const s = await client(key).chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'cut me off' }], // 10 characters: prompt estimate 3
        stream: true,
        max_tokens: 300,
        ...mockOptions({ chunks: 50, cut_after: 6 }),
      });
      let text = '';
      const err = await (async () => {
        for await (const chunk of s) text += chunk.choices[0]?.delta?.content ?? '';
      })().catch((e: unknown) => e);
      // six chunks left the upstream: the role chunk and five content deltas, then the cut
      expect(text).toBe(' word'.repeat(5));
      expect(mock.requests[mock.requests.length - 1].answer).toMatchObject({ aborted: true, usage: null });
      void err; // the SDK may or may not see the truncated chunked body as an error
      expect(await leftAfter(key, start - (3 + 300))).toBe(start - (3 + 5));
    });
  });

  it('gives the whole reservation back when the upstream answers an error without usage', async () => {
    await withErrorLog(project.gw, async () => {
      const key = keys.dave;
      const start = await left(key);
      const err = await client(key)
        .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], max_tokens: 50, ...mockOptions({ status: 503 }) })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect(await leftAfter(key, start - (2 + 50))).toBe(start);
    });
  });

  it('refuses the request that would cross the budget before the upstream sees it, as a RateLimitError', async () => {
    await withErrorLog(project.gw, async () => {
      const c = client(keys.bob);
      const a = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 900 });
      expect(total(a.usage)).toBe(8 + 900);
      const rest = await leftAfter(keys.bob, 1000 - 901);
      expect(rest).toBe(92);
      const before = mock.requests.length;
      // 1 + 92 fits no more: 1 (prompt) + 92 > 92
      const err = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 92 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      const e = err as InstanceType<typeof OpenAI.RateLimitError>;
      expect(e.status).toBe(429);
      expect(e.error).toEqual({ message: 'token budget exceeded', type: 'tokens', param: null, code: 'token_budget_exceeded' });
      const retry = Number(e.headers?.get('retry-after'));
      expect(retry).toBeGreaterThanOrEqual(1);
      expect(retry).toBeLessThanOrEqual(3600);
      expect(mock.requests.length).toBe(before); // not one byte upstream
      // a reload keeps the counters (the shared dict outlives the old workers)
      await project.gw.reload();
      expect(await left(keys.bob)).toBe(92);
      // what fits still goes
      const b = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 91 });
      expect(b.usage?.completion_tokens).toBe(91);
      expect(mock.requests.length).toBe(before + 1);
    });
  });

  it('clamp lowers max_tokens to what remains, as the upstream sees it, and refuses when too little remains', async () => {
    await withErrorLog(project.gw, async () => {
      const c = client(keys.carol, '/clamp/v1');
      await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 200 });
      expect(mock.requests[mock.requests.length - 1].json!.max_tokens).toBe(200);
      // (a probe would be clamped, not refused: the next request shows what is left)
      await sleep(300); // the log phase reconciles after the answer: 208 counted, 92 left
      const b = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 200 });
      // 92 left, 1 of them the prompt estimate: the upstream was asked for 91
      expect(mock.requests[mock.requests.length - 1].json!.max_tokens).toBe(91);
      expect(b.usage?.completion_tokens).toBe(91);
      const before = mock.requests.length;
      await sleep(200);
      const err = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect(mock.requests.length).toBe(before);
    });
  });

  it('a fallback to another model gets the body the budget rewrote: include_usage asked and hidden, max_tokens clamped', async () => {
    await withErrorLog(project.gw, async () => {
      // primary's pool is down: its fallback model gpt-4o (the mock) answers
      const c = client(keys.frank);
      const before = mock.requests.length;
      const s = await c.chat.completions.create({ model: 'primary', messages: [{ role: 'user', content: 'fall back' }], stream: true, max_tokens: 30, ...mockOptions({ chunks: 4 }) });
      const chunks: Record<string, unknown>[] = [];
      for await (const chunk of s) chunks.push(chunk as unknown as Record<string, unknown>);
      expect(mock.requests.length).toBe(before + 1);
      const sent = mock.requests[before];
      expect(sent.json!.model).toBe('gpt-4o');
      expect(sent.json!.stream_options).toEqual({ include_usage: true });
      expect(chunks.some((x) => 'usage' in x)).toBe(false);
      // reserved 3 (9 characters / 4) + 30, reconciled to what the fallback model reported
      expect(await leftAfter(keys.frank, 1000 - 33)).toBe(1000 - total(sent.answer.usage));

      // clamped: 300 a day, 1 of them the prompt estimate; the fallback model is asked for 299, not 500
      const cl = client(keys.frank, '/clamp/v1');
      await cl.chat.completions.create({ model: 'primary', messages: [{ role: 'user', content: 'hi' }], max_tokens: 500 });
      const last = mock.requests[mock.requests.length - 1];
      expect(last.json!.model).toBe('gpt-4o');
      expect(last.json!.max_tokens).toBe(299);
    });
  });

  it('an r/h window refuses the (N+1)th request before the upstream', async () => {
    await withErrorLog(project.gw, async () => {
      const c = client(keys.dave, '/hourly/v1');
      for (let i = 0; i < 3; i++) await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
      const before = mock.requests.length;
      const err = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      const e = err as InstanceType<typeof OpenAI.RateLimitError>;
      expect(e.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
      // the seconds to the end of the hour, not the 1 s of the route's r/s zone (same 429 page)
      const toHourEnd = 3600 - (Math.floor(Date.now() / 1000) % 3600);
      expect(Math.abs(Number(e.headers?.get('retry-after')) - toHourEnd)).toBeLessThanOrEqual(2);
      expect(mock.requests.length).toBe(before);
      // another client has its own window
      await client(keys.erin, '/hourly/v1').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
      expect(mock.requests.length).toBe(before + 1);
    });
  });
});

describe('token budgets beside metrics: one log-phase call and one body filter for both', () => {
  let p2: Project;
  let port2: number;
  let status2: number;
  let key: string;

  beforeAll(async () => {
    [port2, status2] = await freePorts(2);
    const store: KeyFile = { version: 1, keys: [] };
    key = createKey(store, { name: 'frank' }, new Date()).key;
    const text = yaml(port2, mock.address, await deadPort()).replace('listeners:', `global:\n  status: { listen: "127.0.0.1:${status2}" }\nlisteners:`) + 'metrics: {}\n';
    p2 = await startProject({ 'gateway.yaml': text, 'keys.yaml': serializeKeys(store) }, [port2, status2]);
  });
  afterAll(async () => {
    await p2?.stop();
  });

  it('reconciles the budget and counts the same usage in /metrics, a hidden usage chunk included', async () => {
    await withErrorLog(p2.gw, async () => {
      const c = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port2}/v1`, maxRetries: 0 });
      const s = await c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one two' }], stream: true, max_tokens: 11 });
      const chunks: Record<string, unknown>[] = [];
      for await (const chunk of s) chunks.push(chunk as unknown as Record<string, unknown>);
      expect(chunks.some((x) => 'usage' in x)).toBe(false);
      const reported = mock.requests[mock.requests.length - 1].answer.usage!;
      expect(reported).toMatchObject({ prompt_tokens: 9, completion_tokens: 11 });
      const probe = async () => {
        const res = await send({
          port: port2,
          method: 'POST',
          path: '/v1/chat/completions',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], max_tokens: 100000000 }),
        });
        return Number(res.headers['x-ratelimit-remaining-tokens']);
      };
      const deadline = Date.now() + 5000;
      let rest = await probe();
      while (rest === 1000 - (2 + 11) && Date.now() < deadline) {
        await sleep(50);
        rest = await probe();
      }
      expect(rest).toBe(1000 - 20);
      const m = await sendCounted({ port: status2, path: '/metrics' });
      expect(m.text).toContain('gatewayctl_gen_ai_usage_tokens_total{model="gpt-4o",type="input"} 9');
      expect(m.text).toContain('gatewayctl_gen_ai_usage_tokens_total{model="gpt-4o",type="output"} 11');
      expect(m.text).toContain('gatewayctl_metrics_errors_total 0');
    });
  });
});
