// The mock OpenAI-compatible model server: a real HTTP server on 127.0.0.1 that real nginx
// proxies to, for every suite that drives the gateway like an OpenAI client (routing and
// fallbacks, OpenAI-shaped errors, LLM metrics, token budgets).
//
// What it answers (every response carries `X-Upstream-Id: <id>`):
//   POST …/chat/completions   the OpenAI shape, naming the requested model. Not streamed: one JSON
//                             document (gzipped when the request accepts gzip, as real servers
//                             do). `stream: true`: SSE chunks (the first carries the role, then the
//                             content, then one with finish_reason) ending in `data: [DONE]`; with
//                             `stream_options.include_usage`, every chunk has `"usage":null` and a
//                             last chunk before [DONE] carries the usage.
//   POST …/embeddings         the OpenAI embeddings shape.
//   anything else             404, or 400 for a body that is not JSON or an unknown mock option,
//                             each with an OpenAI error body.
// Usage is derived from the request, so every answer reports a different, known usage:
// prompt_tokens = the words of all messages + 7; completion_tokens = max_tokens, else chunks*3+1.
// Every request is recorded (`requests`, oldest first, never trimmed): method, path, headers and
// raw body like the echo upstreams' (EchoRequest), the body parsed (`json`), and what the mock
// answered (`answer`: status, model, streamed, the usage it reported, whether a stream ended early).
//
// Options (MockOptions) shape an answer. Defaults come from startOpenAiUpstream(id, defaults); a
// request overrides them with body members `mock_<name>` (spread `mockOptions({...})` into an
// SDK call) or headers `X-Mock-<Name>` (`mockHeaders({...})`; a header wins over the body):
//   reply      'id' (default): the content is "answer from <id>", which tells the pools apart;
//              'words': "word" once per completion token, streamed one " word" per content chunk
//   delay_ms   hold the answer this long before its first byte (X-Mock-Delay-Ms; default 0)
//   chunks     chunks of a stream before the finish chunk, the role chunk included (default 5);
//              the content is split evenly over the other chunks
//   chunk_ms   delay before each chunk after the first (default 10)
//   cut_after  a stream: drop the connection after this many chunks (an upstream failing mid-stream)
//   model      the model the answer names (default: the requested one)
//   spaced     a stream: JSON with a space after ":" and "," (Python's json.dumps)
//   status     answer this error status with an OpenAI error body (no usage)
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { listenOnLoopback, type EchoRequest } from './upstreams.ts';

export interface MockOptions {
  reply?: 'id' | 'words';
  delay_ms?: number;
  chunks?: number;
  chunk_ms?: number;
  cut_after?: number;
  model?: string;
  spaced?: boolean;
  status?: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface MockAnswer {
  status: number;
  /** the model the answer named */
  model: string;
  stream: boolean;
  /** the usage the answer reported; null: none (an error, a stream without include_usage, a stream that ended early) */
  usage: Usage | null;
  /** the stream ended early: the client went away, or `cut_after` dropped the connection */
  aborted: boolean;
}

export interface OpenAiRequest extends EchoRequest {
  /** the body parsed as JSON; null when it is not JSON */
  json: Record<string, unknown> | null;
  /** what the mock answered (filled in as the answer goes out) */
  answer: MockAnswer;
}

export interface OpenAiUpstream {
  id: string;
  port: number;
  /** `127.0.0.1:<port>`, ready for an upstream `server` line */
  readonly address: string;
  /** every request received, in arrival order */
  readonly requests: OpenAiRequest[];
  close(): Promise<void>;
}

const NUMBERS = ['delay_ms', 'chunks', 'chunk_ms', 'cut_after', 'status'] as const;
const OPTIONS: readonly string[] = [...NUMBERS, 'reply', 'model', 'spaced'];

/** Body members carrying these options, to spread into an SDK call (typed to fit any params). */
export function mockOptions(o: MockOptions): Record<string, never> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[`mock_${k}`] = v;
  return out as Record<string, never>;
}

/** Request headers carrying these options (`delay_ms` → `X-Mock-Delay-Ms`). */
export function mockHeaders(o: MockOptions): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) out[`X-Mock-${k.split('_').map((w) => w[0].toUpperCase() + w.slice(1)).join('-')}`] = String(v);
  return out;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The defaults, then the body's `mock_*` members, then the `X-Mock-*` headers; an error for an unknown or malformed one. */
function optionsOf(defaults: MockOptions, json: Record<string, unknown> | null, headers: IncomingMessage['headers']): MockOptions | string {
  const given: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json ?? {})) if (k.startsWith('mock_')) given[k.slice(5)] = v;
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('x-mock-') && typeof v === 'string') given[k.slice(7).replace(/-/g, '_')] = v;
  const o: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(given)) {
    if (!OPTIONS.includes(k)) return `unknown mock option ${k}`;
    if ((NUMBERS as readonly string[]).includes(k)) {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) return `mock option ${k} must be a whole number`;
      o[k] = n;
    } else if (k === 'spaced') o[k] = v === true || v === 1 || v === '1' || v === 'true';
    else if (k === 'reply' && v !== 'id' && v !== 'words') return 'mock option reply must be id or words';
    else o[k] = String(v);
  }
  return o as MockOptions;
}

export async function startOpenAiUpstream(id: string, defaults: MockOptions = {}): Promise<OpenAiUpstream> {
  const requests: OpenAiRequest[] = [];
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let json: Record<string, unknown> | null = null;
    try {
      const doc: unknown = JSON.parse(text);
      if (doc && typeof doc === 'object' && !Array.isArray(doc)) json = doc as Record<string, unknown>;
    } catch {
      // not JSON: json stays null
    }
    const rec: OpenAiRequest = {
      id,
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body: text,
      json,
      answer: { status: 0, model: typeof json?.model === 'string' ? json.model : '', stream: json?.stream === true, usage: null, aborted: false },
    };
    requests.push(rec);
    await answer(req, res, rec, requests.length);
  });

  async function answer(req: IncomingMessage, res: ServerResponse, rec: OpenAiRequest, n: number): Promise<void> {
    res.setHeader('X-Upstream-Id', id);
    const a = rec.answer;
    const fail = (status: number, type: string, message: string) => {
      a.status = status;
      a.stream = false;
      sendJson(res, status, { error: { message, type, param: null, code: null } });
    };
    const path = (req.url ?? '').split('?')[0];
    const chat = path.endsWith('/chat/completions');
    if (req.method !== 'POST' || !(chat || path.endsWith('/embeddings'))) return fail(404, 'invalid_request_error', 'not found');
    if (!rec.json) return fail(400, 'invalid_request_error', 'the body is not a JSON object');
    const o = optionsOf(defaults, rec.json, req.headers);
    if (typeof o === 'string') return fail(400, 'invalid_request_error', o);
    const doc = rec.json as {
      model?: unknown;
      messages?: { content?: unknown }[];
      input?: unknown;
      stream?: boolean;
      stream_options?: { include_usage?: boolean };
      max_tokens?: number;
    };
    a.model = o.model ?? (typeof doc.model === 'string' ? doc.model : 'unknown');
    const words = (s: unknown) => (typeof s === 'string' ? s.split(/\s+/).filter(Boolean).length : 0);
    const count = o.chunks ?? 5;
    const prompt = (Array.isArray(doc.messages) ? doc.messages.reduce((t, m) => t + words(m?.content), 0) : 0) + 7;
    const completion = typeof doc.max_tokens === 'number' ? doc.max_tokens : count * 3 + 1;
    const usage: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    const chatId = `chatcmpl-${id}-${n}`;
    const created = Math.floor(Date.now() / 1000);
    let gone = false;
    res.on('close', () => {
      if (!res.writableFinished) gone = true;
    });

    if (o.delay_ms) await sleep(o.delay_ms);
    if (gone) {
      a.aborted = true;
      return;
    }
    if (o.status) return fail(o.status, 'server_error', 'overloaded');
    a.status = 200;

    if (!chat) {
      a.stream = false;
      const input = Array.isArray(doc.input) ? doc.input : [doc.input];
      const tokens = input.reduce((t: number, s) => t + words(s), 0);
      a.usage = { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens };
      return sendJson(res, 200, {
        object: 'list',
        model: a.model,
        data: input.map((_, index) => ({ object: 'embedding', index, embedding: [0.1, 0.2] })),
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      });
    }

    const inWords = o.reply === 'words';
    if (!a.stream) {
      const content = inWords ? 'word '.repeat(completion).trim() : `answer from ${id}`;
      a.usage = usage;
      return sendJson(
        res,
        200,
        {
          id: chatId,
          object: 'chat.completion',
          created,
          model: a.model,
          choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
          usage: { ...usage, prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } },
          system_fingerprint: 'fp_mock',
        },
        /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? '')),
      );
    }

    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    const encode = (x: unknown) => (o.spaced ? JSON.stringify(x).replace(/":/g, '": ').replace(/,"/g, ', "') : JSON.stringify(x));
    const send = (x: unknown) => res.write(`data: ${encode(x)}\n\n`);
    const includeUsage = doc.stream_options?.include_usage === true;
    const usageNull = includeUsage ? { usage: null } : {};
    const parts = Math.max(count - 1, 0);
    const text = inWords ? ' word'.repeat(parts) : `answer from ${id}`;
    for (let i = 0; i < count && !gone; i++) {
      if (i > 0) await sleep(o.chunk_ms ?? 10);
      if (o.cut_after === i) {
        a.aborted = true;
        res.socket?.destroy();
        return;
      }
      const delta = i === 0 ? { role: 'assistant', content: '' } : { content: text.slice(Math.floor(((i - 1) * text.length) / parts), Math.floor((i * text.length) / parts)) };
      send({ id: chatId, object: 'chat.completion.chunk', created, model: a.model, system_fingerprint: 'fp_mock', choices: [{ index: 0, delta, logprobs: null, finish_reason: null }], ...usageNull });
    }
    if (gone) {
      a.aborted = true;
      return;
    }
    send({ id: chatId, object: 'chat.completion.chunk', created, model: a.model, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], ...usageNull });
    if (includeUsage) {
      send({ id: chatId, object: 'chat.completion.chunk', created, model: a.model, choices: [], usage });
      a.usage = usage;
    }
    res.end('data: [DONE]\n\n');
  }

  const { port, close } = await listenOnLoopback(server);
  return {
    id,
    port,
    get address() {
      return `127.0.0.1:${port}`;
    },
    get requests() {
      return requests;
    },
    close,
  };
}

function sendJson(res: ServerResponse, status: number, obj: unknown, gzip = false): void {
  const text = JSON.stringify(obj);
  if (gzip) {
    const body = gzipSync(text);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': body.length });
    res.end(body);
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
