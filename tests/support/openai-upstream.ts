// A mock OpenAI-compatible model server on 127.0.0.1 for suites that drive the gateway with the
// official `openai` SDK. POST /v1/chat/completions and /v1/embeddings answer in the OpenAI
// shapes (the body's `model` echoed, `stream: true` as SSE chunks ending in `data: [DONE]`);
// every response carries `X-Upstream-Id`. A request header `X-Mock-Delay-Ms: N` holds the
// answer N ms (concurrency limits, timeouts). Requests are recorded like the echo upstreams'.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback, type EchoRequest } from './upstreams.ts';

export interface OpenAiUpstream {
  id: string;
  port: number;
  readonly address: string;
  /** the requests received, oldest first */
  readonly requests: EchoRequest[];
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startOpenAiUpstream(id: string): Promise<OpenAiUpstream> {
  const requests: EchoRequest[] = [];
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    requests.push({ id, method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: text });
    const delay = Number(req.headers['x-mock-delay-ms'] ?? 0);
    if (delay > 0) await sleep(delay);
    if (res.destroyed) return;
    res.setHeader('X-Upstream-Id', id);
    let body: { model?: string; stream?: boolean; messages?: { content?: string }[] } = {};
    try {
      body = JSON.parse(text);
    } catch {
      // answered below with the model "unknown"
    }
    const model = typeof body.model === 'string' ? body.model : 'unknown';
    const created = Math.floor(Date.now() / 1000);
    if (req.url?.startsWith('/v1/embeddings')) {
      return json(res, 200, { object: 'list', model, data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], usage: { prompt_tokens: 3, total_tokens: 3 } });
    }
    const content = `answer from ${id}`;
    if (body.stream) {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      for (const part of [content.slice(0, 7), content.slice(7)]) {
        res.write(`data: ${JSON.stringify({ id: `chatcmpl-${id}`, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { content: part }, finish_reason: null }] })}\n\n`);
      }
      res.write(`data: ${JSON.stringify({ id: `chatcmpl-${id}`, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
      res.end('data: [DONE]\n\n');
      return;
    }
    json(res, 200, {
      id: `chatcmpl-${id}`,
      object: 'chat.completion',
      created,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
    });
  });
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

function json(res: ServerResponse, status: number, obj: unknown): void {
  const text = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
