// A mock OpenAI-compatible upstream for the LLM accounting suites: POST /v1/chat/completions
// answers like the OpenAI API (non-streamed JSON, or SSE chunks with `"usage":null` and, with
// `stream_options.include_usage`, a final usage chunk before `data: [DONE]`). Token counts are
// derived from the request so every answer reports a different, known usage; each answer is
// recorded with the usage it reported and the Accept-Encoding it was asked with, and every request
// body is kept (`requests`), so a suite can prove what the upstream did or did not receive. It gzips
// non-streamed answers when the request accepts gzip (as real servers do), so a gateway that
// forwarded the client's Accept-Encoding would see a compressed body.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export interface MockAnswer {
  model: string;
  stream: boolean;
  acceptEncoding: string;
  usage: { prompt_tokens: number; completion_tokens: number } | null; // null: no usage sent
  /** the stream ended because the client went away */
  aborted: boolean;
}

export interface OpenAiMock {
  readonly address: string;
  readonly answers: MockAnswer[];
  /** every chat completion request body the mock received, parsed, in arrival order */
  readonly requests: Record<string, unknown>[];
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Options read from the request body besides the OpenAI ones:
 *   mock_chunks        content chunks of a stream (default 5)
 *   mock_chunk_ms      delay before each chunk (default 10)
 *   mock_first_ms      delay before the first byte of the body (default 0)
 *   mock_model         the model the response names (default: the requested one)
 *   mock_cut_after     a stream: the upstream drops the connection after this many chunks
 *   mock_spaced        a stream: JSON with a space after ":" and "," (Python's json.dumps)
 *   mock_status        answer this error status with an OpenAI error body (no usage)
 */
export async function startOpenAiMock(): Promise<OpenAiMock> {
  const answers: MockAnswer[] = [];
  const requests: Record<string, unknown>[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => void answer(req, res, body));
  });
  async function answer(req: IncomingMessage, res: ServerResponse, text: string): Promise<void> {
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":{"message":"not found"}}');
      return;
    }
    requests.push(JSON.parse(text) as Record<string, unknown>);
    const doc = JSON.parse(text) as {
      model: string;
      messages: { content: string }[];
      stream?: boolean;
      stream_options?: { include_usage?: boolean };
      max_tokens?: number;
      mock_chunks?: number;
      mock_chunk_ms?: number;
      mock_first_ms?: number;
      mock_model?: string;
      mock_cut_after?: number;
      mock_spaced?: number;
      mock_status?: number;
    };
    const model = doc.mock_model ?? doc.model;
    const prompt = doc.messages.map((m) => m.content).join(' ').split(/\s+/).filter(Boolean).length + 7;
    const chunks = doc.mock_chunks ?? 5;
    const completion = doc.max_tokens ?? chunks * 3 + 1;
    const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    const rec: MockAnswer = { model, stream: !!doc.stream, acceptEncoding: String(req.headers['accept-encoding'] ?? ''), usage: null, aborted: false };
    answers.push(rec);
    const id = `chatcmpl-${answers.length}`;
    const created = Math.floor(Date.now() / 1000);
    await sleep(doc.mock_first_ms ?? 0);
    if (doc.mock_status) {
      res.writeHead(doc.mock_status, { 'Content-Type': 'application/json' }).end('{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}');
      return;
    }
    if (!doc.stream) {
      const json = JSON.stringify({
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'word '.repeat(completion).trim(), refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage: { ...usage, prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } },
        system_fingerprint: 'fp_mock',
      });
      rec.usage = usage;
      if (/\bgzip\b/.test(rec.acceptEncoding)) {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }).end(gzipSync(json));
      } else {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(json);
      }
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    let gone = false;
    res.on('close', () => {
      if (!res.writableFinished) gone = true;
    });
    const json = (o: unknown) => (doc.mock_spaced ? JSON.stringify(o).replace(/":/g, '": ').replace(/,"/g, ', "') : JSON.stringify(o));
    const send = (o: unknown) => res.write(`data: ${json(o)}\n\n`);
    const includeUsage = doc.stream_options?.include_usage === true;
    for (let i = 0; i < chunks && !gone; i++) {
      if (i > 0) await sleep(doc.mock_chunk_ms ?? 10);
      if (doc.mock_cut_after === i) {
        rec.aborted = true;
        res.socket?.destroy();
        return;
      }
      const delta = i === 0 ? { role: 'assistant', content: '' } : { content: ' word' };
      send({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_mock', choices: [{ index: 0, delta, logprobs: null, finish_reason: null }], ...(includeUsage ? { usage: null } : {}) });
    }
    if (gone) {
      rec.aborted = true;
      return;
    }
    send({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], ...(includeUsage ? { usage: null } : {}) });
    if (includeUsage) {
      send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
      rec.usage = usage;
    }
    res.end('data: [DONE]\n\n');
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    answers,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
