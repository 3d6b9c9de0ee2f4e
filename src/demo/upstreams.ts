// Demo upstreams for `gatewayctl up --demo`: small real HTTP servers on loopback that the
// bundled gateway.yaml points at. An OpenAI-compatible fake model server (SSE streaming
// chat completions, /v1/models) and a JSON echo API.
import http from 'node:http';

export interface DemoServer {
  name: string;
  port: number;
  close(): Promise<void>;
}

function json(res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...extra });
  res.end(JSON.stringify(body));
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

export function modelServer(name: string, models: string[]): http.Server {
  return http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/health') return json(res, 200, { status: 'ok', server: name });
    if (url.pathname === '/v1/models') {
      return json(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', owned_by: name })) }, { 'x-upstream': name });
    }
    if (url.pathname === '/v1/chat/completions' && req.method === 'POST') {
      const raw = await readBody(req);
      let body: { model?: string; stream?: boolean; messages?: { content?: string }[] } = {};
      try {
        body = JSON.parse(raw || '{}');
      } catch {
        return json(res, 400, { error: { message: 'invalid JSON body' } });
      }
      const words = `Hello from ${name}, you said: ${body.messages?.at(-1)?.content ?? ''}`.split(' ');
      const id = `chatcmpl-${Date.now().toString(36)}`;
      if (!body.stream) {
        return json(res, 200, { id, object: 'chat.completion', model: body.model ?? models[0], choices: [{ index: 0, message: { role: 'assistant', content: words.join(' ') }, finish_reason: 'stop' }] }, { 'x-upstream': name });
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-upstream': name });
      let i = 0;
      const timer = setInterval(() => {
        if (i < words.length) {
          res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: `${words[i]} ` } }] })}\n\n`);
          i++;
        } else {
          clearInterval(timer);
          res.end('data: [DONE]\n\n');
        }
      }, 80);
      req.on('close', () => clearInterval(timer));
      return;
    }
    json(res, 404, { error: { message: `no such path on ${name}` } });
  });
}

export function echoServer(name: string): http.Server {
  return http.createServer(async (req, res) => {
    const body = await readBody(req);
    json(res, 200, { server: name, method: req.method, path: req.url, headers: req.headers, body }, { 'x-upstream': name });
  });
}

function listen(name: string, server: http.Server, port: number): Promise<DemoServer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () =>
      resolve({
        name,
        port,
        close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
      }),
    );
  });
}

/** The upstreams the bundled gateway.yaml expects. */
export async function startDemoUpstreams(): Promise<DemoServer[]> {
  return Promise.all([
    listen('llm-a', modelServer('llm-a', ['demo-small', 'demo-large']), 9101),
    listen('llm-b', modelServer('llm-b', ['demo-small', 'demo-large']), 9102),
    listen('api', echoServer('api'), 9201),
  ]);
}
