// Demo upstreams for docker-compose.yml (plain Node, no dependencies): the same servers
// `gatewayctl up --demo` runs on loopback (src/demo/upstreams.ts), one per container.
//   KIND=model  an OpenAI-compatible fake model server: /v1/models, /v1/chat/completions
//               (streamed as server-sent events with "stream": true), /health
//   KIND=echo   a JSON echo API: method, path, headers and body of every request
// UPSTREAM_ID names the replica (the x-upstream header and the answers carry it).
import { createServer } from 'node:http';

const id = process.env.UPSTREAM_ID ?? 'demo';
const kind = process.env.KIND ?? 'echo';
const port = Number(process.env.PORT ?? 3000);
const models = ['demo-small', 'demo-large'];

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-upstream': id });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

async function model(req, res) {
  const url = new URL(req.url ?? '/', 'http://upstream');
  if (url.pathname === '/health') return json(res, 200, { status: 'ok', server: id });
  if (url.pathname === '/v1/models') return json(res, 200, { object: 'list', data: models.map((m) => ({ id: m, object: 'model', owned_by: id })) });
  if (url.pathname === '/v1/chat/completions' && req.method === 'POST') {
    let body;
    try {
      body = JSON.parse((await readBody(req)) || '{}');
    } catch {
      return json(res, 400, { error: { message: 'invalid JSON body' } });
    }
    const words = `Hello from ${id}, you said: ${body.messages?.at(-1)?.content ?? ''}`.split(' ');
    const cid = `chatcmpl-${Date.now().toString(36)}`;
    if (!body.stream) {
      return json(res, 200, { id: cid, object: 'chat.completion', model: body.model ?? models[0], choices: [{ index: 0, message: { role: 'assistant', content: words.join(' ') }, finish_reason: 'stop' }] });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-upstream': id });
    let i = 0;
    const timer = setInterval(() => {
      if (i < words.length) {
        res.write(`data: ${JSON.stringify({ id: cid, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: `${words[i]} ` } }] })}\n\n`);
        i++;
      } else {
        clearInterval(timer);
        res.end('data: [DONE]\n\n');
      }
    }, 80);
    req.on('close', () => clearInterval(timer));
    return;
  }
  json(res, 404, { error: { message: `no such path on ${id}` } });
}

async function echo(req, res) {
  const body = await readBody(req);
  json(res, 200, { server: id, method: req.method, path: req.url, headers: req.headers, body });
}

createServer(kind === 'model' ? model : echo).listen(port, '0.0.0.0', () => console.log(`${id} (${kind}) listening on :${port}`));
process.on('SIGTERM', () => process.exit(0));
