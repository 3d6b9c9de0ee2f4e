// LLM accounting through real nginx: the official `openai` SDK talks to a gateway whose model
// route proxies to a mock OpenAI-compatible upstream. The body filter only looks at what passes
// by; /metrics then counts exactly the tokens the upstream reported — for a non-streamed answer,
// a streamed one (the final usage chunk), per model and per client — marks a stream the client
// cut before its usage chunk as unknown, fills the TTFT histogram of streamed answers, and the
// JSON access log carries the model and the token counts.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { scrapeSamples, send, sleep } from '../support/http.ts';
import { mockOptions, startOpenAiUpstream, type OpenAiUpstream } from '../support/openai-upstream.ts';

const yaml = (port: number, status: number, upstream: string) => `
version: 1
global:
  worker_processes: 2
  status: { listen: "127.0.0.1:${status}" }
  compression: { gzip: true }
listeners:
  - name: public
    address: 127.0.0.1
    port: ${port}
upstreams:
  llm:
    servers: ["${upstream}"]
models:
  - { id: gpt-4o, upstream: llm }
  - { id: gpt-4o-mini, upstream: llm }
auth:
  api_keys: { file: keys.yaml }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    auth: api_key
    streaming: true
  - name: compat
    match: { prefix: /compat/ }
    upstream: llm
    strip_prefix: true
    streaming: true
metrics:
  buckets: [0.05, 0.1, 0.2, 0.4, 1, 5]
  llm:
    routes: [compat]
    client_label: true
`;

let mock: OpenAiUpstream;
let project: Project;
let port: number;
let statusPort: number;
let alice: string;
let bob: string;

beforeAll(async () => {
  mock = await startOpenAiUpstream('llm', { reply: 'words' });
  [port, statusPort] = await freePorts(2);
  const store: KeyFile = { version: 1, keys: [] };
  alice = createKey(store, { name: 'alice' }, new Date()).key;
  bob = createKey(store, { name: 'bob' }, new Date()).key;
  project = await startProject({ 'gateway.yaml': yaml(port, statusPort, mock.address), 'keys.yaml': serializeKeys(store) }, [port, statusPort]);
});

afterAll(async () => {
  await project?.stop();
  await mock?.close();
  await stopAllGateways();
});

const client = (key: string, base = '/v1') => new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port}${base}`, maxRetries: 0, defaultHeaders: { 'Accept-Encoding': 'gzip' } });

const metrics = async (): Promise<Map<string, number>> => (await scrapeSamples(statusPort)).values;

/** poll an async condition (the log phase runs after the answer is sent) */
async function until(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const llmRequests = (v: Map<string, number>) =>
  [...v.entries()].filter(([k]) => k.startsWith('gatewayctl_gen_ai_requests_total{')).reduce((a, [, n]) => a + n, 0);

/** wait until the log phase counted `n` LLM requests in all */
async function countedLlm(n: number): Promise<Map<string, number>> {
  let v = await metrics();
  await until(
    async () => {
      v = await metrics();
      return llmRequests(v) >= n;
    },
    5000,
    `${n} LLM requests counted`,
  );
  return v;
}

const tokens = (v: Map<string, number>, model: string, type: 'input' | 'output') => v.get(`gatewayctl_gen_ai_usage_tokens_total{model="${model}",type="${type}"}`) ?? 0;
const byClient = (v: Map<string, number>, c: string, model: string, type: 'input' | 'output') =>
  v.get(`gatewayctl_gen_ai_client_usage_tokens_total{client="${c}",model="${model}",type="${type}"}`) ?? 0;

describe('LLM accounting through real nginx', () => {
  it('counts the exact usage of non-streamed answers by model and client, uncompressed from the upstream', async () => {
    await withErrorLog(project.gw, async () => {
      const a = await client(alice).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one two three' }], max_tokens: 17 });
      const b = await client(bob).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'four five six seven eight' }], max_tokens: 23 });
      expect(a.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 17 });
      expect(b.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 23 });
      // the SDK asked the gateway for gzip; the gateway asked the upstream for an uncompressed body
      expect(mock.requests.map((x) => x.headers['accept-encoding'] ?? '')).toEqual(['', '']);
      const v = await countedLlm(2);
      expect(tokens(v, 'gpt-4o', 'input')).toBe(10 + 12);
      expect(tokens(v, 'gpt-4o', 'output')).toBe(17 + 23);
      expect(byClient(v, 'alice', 'gpt-4o', 'input')).toBe(10);
      expect(byClient(v, 'alice', 'gpt-4o', 'output')).toBe(17);
      expect(byClient(v, 'bob', 'gpt-4o', 'output')).toBe(23);
      expect(v.get('gatewayctl_gen_ai_requests_total{route="chat",model="gpt-4o",status_class="2xx"}')).toBe(2);
      // a non-streamed answer has no time to first token of its own
      expect(v.get('gatewayctl_gen_ai_server_time_to_first_token_seconds_count{model="gpt-4o"}') ?? 0).toBe(0);
      expect([...v.keys()].filter((k) => k.startsWith('gatewayctl_gen_ai_usage_unknown_total{'))).toEqual([]);
    });
  });

  it('counts the final usage chunk of a stream and its time to first token', async () => {
    await withErrorLog(project.gw, async () => {
      const before = await metrics();
      const s = await client(alice).chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'stream me please' }],
        stream: true,
        stream_options: { include_usage: true },
        ...mockOptions({ chunks: 8, delay_ms: 250 }),
      });
      let usage: OpenAI.CompletionUsage | null | undefined = null;
      let text = '';
      for await (const chunk of s) {
        if (chunk.usage) usage = chunk.usage;
        text += chunk.choices[0]?.delta?.content ?? '';
      }
      expect(text).toBe(' word'.repeat(7));
      expect(usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 25 });
      const v = await countedLlm(llmRequests(before) + 1);
      expect(tokens(v, 'gpt-4o-mini', 'input') - tokens(before, 'gpt-4o-mini', 'input')).toBe(10);
      expect(tokens(v, 'gpt-4o-mini', 'output') - tokens(before, 'gpt-4o-mini', 'output')).toBe(25);
      expect(byClient(v, 'alice', 'gpt-4o-mini', 'output')).toBe(25);
      // the first byte left the upstream after 250 ms: TTFT is in the buckets above 0.2 s
      const fam = 'gatewayctl_gen_ai_server_time_to_first_token_seconds';
      expect(v.get(`${fam}_count{model="gpt-4o-mini"}`)).toBe(1);
      expect(v.get(`${fam}_bucket{model="gpt-4o-mini",le="0.2"}`)).toBe(0);
      expect(v.get(`${fam}_bucket{model="gpt-4o-mini",le="1"}`)).toBe(1);
      expect(v.get(`${fam}_sum{model="gpt-4o-mini"}`)).toBeGreaterThanOrEqual(0.25);
    });
  });

  it('marks a stream the client cut before its usage chunk as unknown, and counts no tokens for it', async () => {
    await withErrorLog(project.gw, async () => {
      const before = await metrics();
      const s = await client(alice).chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'a long story' }],
        stream: true,
        stream_options: { include_usage: true },
        ...mockOptions({ chunks: 200, chunk_ms: 20 }),
      });
      let n = 0;
      for await (const _ of s) {
        if (++n === 3) {
          s.controller.abort();
          break;
        }
      }
      await until(async () => mock.requests[mock.requests.length - 1].answer.aborted, 10_000, 'the upstream to see the client go');
      const v = await countedLlm(llmRequests(before) + 1);
      expect(v.get('gatewayctl_gen_ai_usage_unknown_total{model="gpt-4o"}')).toBe(1);
      expect(tokens(v, 'gpt-4o', 'input')).toBe(tokens(before, 'gpt-4o', 'input'));
      expect(tokens(v, 'gpt-4o', 'output')).toBe(tokens(before, 'gpt-4o', 'output'));
    });
  });

  it('takes the model from the response on an LLM route without model routing; the access log carries model and tokens', async () => {
    await withErrorLog(project.gw, async () => {
      const before = await metrics();
      const r = await client('unused', '/compat/v1').chat.completions.create({
        model: 'whatever',
        messages: [{ role: 'user', content: 'x' }],
        max_tokens: 5,
        ...mockOptions({ model: 'llama-3.1-8b' }),
      });
      expect(r.model).toBe('llama-3.1-8b');
      const v = await countedLlm(llmRequests(before) + 1);
      expect(v.get('gatewayctl_gen_ai_requests_total{route="compat",model="llama-3.1-8b",status_class="2xx"}')).toBe(1);
      expect(tokens(v, 'llama-3.1-8b', 'input')).toBe(8);
      expect(tokens(v, 'llama-3.1-8b', 'output')).toBe(5);
      let lines: Record<string, unknown>[] = [];
      await until(
        async () => {
          lines = project.gw
            .accessLog()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>);
          return lines.some((l) => l.route === 'compat');
        },
        5000,
        'the access log line',
      );
      expect(lines.find((l) => l.route === 'compat')).toMatchObject({ model: 'llama-3.1-8b', input_tokens: 8, output_tokens: 5, ttft: null });
      const streamed = lines.find((l) => l.route === 'chat' && l.model === 'gpt-4o-mini')!;
      expect(streamed).toMatchObject({ input_tokens: 10, output_tokens: 25 });
      expect(streamed.ttft).toBeGreaterThanOrEqual(0.25);
      expect(lines.filter((l) => l.route === 'chat' && l.input_tokens === null).length).toBe(1); // the cut stream
    });
  });
});
