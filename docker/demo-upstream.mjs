// Demo upstream for docker-compose.yml (plain Node, no dependencies). Answers JSON with its
// id on every path; /v1/stream sends server-sent events (one every 100 ms, ?events=N).
import { createServer } from 'node:http';

const id = process.env.UPSTREAM_ID ?? 'demo';
const port = Number(process.env.PORT ?? 3000);

createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://upstream');
  if (url.pathname.endsWith('/stream')) {
    const events = Math.min(Number(url.searchParams.get('events') ?? 20), 1000);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let n = 0;
    const timer = setInterval(() => {
      n++;
      res.write(`id: ${n}\ndata: ${JSON.stringify({ upstream: id, n })}\n\n`);
      if (n >= events) {
        clearInterval(timer);
        res.end();
      }
    }, 100);
    req.on('close', () => clearInterval(timer));
    return;
  }
  const body = JSON.stringify({ upstream: id, method: req.method, path: url.pathname });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}).listen(port, '0.0.0.0', () => console.log(`${id} listening on :${port}`));

process.on('SIGTERM', () => process.exit(0));
