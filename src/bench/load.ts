// Load generators: wrk (Debian package `wrk`) when it is on PATH, else a keep-alive Node
// client. Both send the same request shape: Host, User-Agent, Accept and one fourth header
// (the credential, or `X-Bench: 1` where none is needed), plus any `extra` headers (a
// route's required headers in `gatewayctl bench -c`); requests with a body (POST, PUT, PATCH)
// add Content-Type and Content-Length with a ~150-byte JSON chat body whose `user` varies
// over 1,000 values. Used by scripts/bench.ts and `gatewayctl bench`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import path from 'node:path';

export interface RequestShape {
  method: string;
  path: string;
  /** The fourth header: [name, value]. */
  header: [string, string];
  /** More headers sent with every request (Host, a route's required headers). */
  extra?: Record<string, string>;
  /** The `model` of the JSON body (default gpt-4o). */
  model?: string;
  /** Rotating bearer tokens (each thread/connection set takes its own slice). */
  tokens?: string[];
}

export interface LoadResult {
  requests: number;
  seconds: number;
  /** Responses other than 2xx/3xx plus socket errors. */
  errors: number;
}

export type ClientKind = 'wrk' | 'node';

export interface LoadOptions {
  port: number;
  seconds: number;
  connections: number;
  threads: number;
  workDir: string;
}

export const USER_VARIANTS = 1000;
/** Whether requests of this method carry the JSON body. */
export const hasBody = (method: string) => method === 'POST' || method === 'PUT' || method === 'PATCH';
export const bodyFor = (i: number, model = 'gpt-4o') =>
  JSON.stringify({ model, user: `end-user-${i % USER_VARIANTS}`, messages: [{ role: 'user', content: 'Say hello in five words.' }], temperature: 0 });

export function headersFor(shape: RequestShape): Record<string, string> {
  const h: Record<string, string> = { 'User-Agent': 'gatewayctl-bench', Accept: '*/*', ...shape.extra, [shape.header[0]]: shape.header[1] };
  if (hasBody(shape.method)) h['Content-Type'] = 'application/json';
  return h;
}

export function wrkAvailable(): boolean {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
}

export function pickClient(wanted: 'auto' | ClientKind): ClientKind {
  if (wanted === 'node') return 'node';
  if (wrkAvailable()) return 'wrk';
  if (wanted === 'wrk') throw new Error('wrk is not on PATH (Debian: apt-get install wrk)');
  return 'node';
}

// wrk processes not yet ended, for stopLoad()
const running = new Set<ChildProcess>();

/** Kill every wrk still running (synchronous: for signal and exit handlers). */
export function stopLoad(): void {
  for (const p of running) p.kill('SIGKILL');
  running.clear();
}

export function run(kind: ClientKind, shape: RequestShape, opts: LoadOptions): Promise<LoadResult> {
  return kind === 'wrk' ? runWrk(shape, opts) : runNode(shape, opts);
}

const lua = (s: string) => JSON.stringify(s); // a JSON string is a valid Lua string literal here (ASCII)

let scriptSeq = 0;
async function wrkScript(shape: RequestShape, opts: LoadOptions): Promise<string> {
  const file = path.join(opts.workDir, `wrk-${scriptSeq++}.lua`);
  const headers = headersFor(shape);
  const headerTable = `{ ${Object.entries(headers).map(([k, v]) => `[${lua(k)}] = ${lua(v)}`).join(', ')} }`;
  let text: string;
  if (shape.method === 'GET' && !shape.tokens) {
    // static request: wrk's fastest path
    text = `wrk.method = "GET"\nwrk.path = ${lua(shape.path)}\nwrk.headers = ${headerTable}\n`;
  } else {
    let variants: string[];
    let make: string;
    if (shape.tokens) {
      variants = shape.tokens;
      make = `local h = ${headerTable}\n    h["Authorization"] = "Bearer " .. v\n    return wrk.format(${lua(shape.method)}, ${lua(shape.path)}, h, nil)`;
    } else {
      variants = hasBody(shape.method) ? Array.from({ length: USER_VARIANTS }, (_, i) => bodyFor(i, shape.model)) : [''];
      make = hasBody(shape.method) ? `return wrk.format(${lua(shape.method)}, ${lua(shape.path)}, ${headerTable}, v)` : `return wrk.format(${lua(shape.method)}, ${lua(shape.path)}, ${headerTable}, nil)`;
    }
    const dataFile = `${file}.data`;
    await writeFile(dataFile, variants.join('\n') + '\n');
    text = `local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local reqs = {}
local i = 0
local function make(v)
    ${make}
end
function init(args)
  local lines = {}
  for line in io.lines(${lua(dataFile)}) do lines[#lines + 1] = line end
  local per = math.max(1, math.floor(#lines / ${opts.threads}))
  local first = ((tid or 0) * per) % #lines
  for k = 0, per - 1 do reqs[#reqs + 1] = make(lines[(first + k) % #lines + 1]) end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
`;
  }
  await writeFile(file, text);
  return file;
}

async function runWrk(shape: RequestShape, opts: LoadOptions): Promise<LoadResult> {
  const script = await wrkScript(shape, opts);
  // wrk takes whole seconds; a fractional duration is ended by SIGINT, on which wrk stops and
  // prints its summary like at the end of -d.
  const whole = Number.isInteger(opts.seconds);
  const args = [`-t${opts.threads}`, `-c${opts.connections}`, `-d${whole ? opts.seconds : Math.ceil(opts.seconds) + 5}s`, '--timeout', '10s', '-s', script, `http://127.0.0.1:${opts.port}${shape.path}`];
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(p);
    p.on('close', () => running.delete(p));
    let text = '';
    p.stdout.on('data', (d) => (text += d));
    p.stderr.on('data', (d) => (text += d));
    p.on('error', reject);
    const timer = whole ? undefined : setTimeout(() => p.kill('SIGINT'), opts.seconds * 1000);
    p.on('close', () => clearTimeout(timer));
    p.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}:\n${text}`))));
  });
  const m = /(\d+) requests in ([\d.]+)(m?s)/.exec(out);
  if (!m) throw new Error(`cannot read wrk output:\n${out}`);
  const seconds = Number(m[2]) / (m[3] === 'ms' ? 1000 : 1);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { requests: Number(m[1]), seconds, errors: non2xx + sockErrors };
}

async function runNode(shape: RequestShape, opts: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections });
  const headers = headersFor(shape);
  let done = 0;
  let errors = 0;
  let i = 0;
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + opts.seconds * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const n = i++;
      const h: Record<string, string | number> = { ...headers };
      const body = hasBody(shape.method) ? bodyFor(n, shape.model) : undefined;
      if (body) h['Content-Length'] = Buffer.byteLength(body);
      if (shape.tokens) h.Authorization = `Bearer ${shape.tokens[n % shape.tokens.length]}`;
      const req = request({ host: '127.0.0.1', port: opts.port, path: shape.path, method: shape.method, agent, headers: h }, (res) => {
        res.resume();
        res.on('end', () => {
          done++;
          if ((res.statusCode ?? 0) >= 400) errors++;
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  const worker = async () => {
    while (Date.now() < deadline) await one();
  };
  await Promise.all(Array.from({ length: opts.connections }, worker));
  agent.destroy();
  return { requests: done, seconds: Number(process.hrtime.bigint() - t0) / 1e9, errors };
}
