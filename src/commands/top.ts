// `gatewayctl top`: a terminal view of a running gateway from its /metrics — scrape, wait,
// scrape, show what happened in between (src/features/metrics/top.ts), redraw in place.
import { parseExposition, render, frame, summarize, type Snapshot } from '../features/metrics/top.ts';

export const help = `
Reads the gateway's Prometheus metrics (metrics: in gateway.yaml) twice, --interval seconds
apart, and shows what happened in between: requests per second and the 5xx ratio overall and
per route, p50/p95/p99 latency per route (from the duration histogram's buckets), cache hit
rate per zone, and requests and tokens per second per model on LLM routes. Without --once it
redraws in place every interval until Ctrl-C. The default URL is the status listener's
(global.status, 127.0.0.1:8081); scrape from the gateway's host or an address metrics.allow
admits.

Examples:
  $ gatewayctl top
  $ gatewayctl top --url http://10.0.0.5:8081/metrics --interval 5
  $ gatewayctl top --once --json`;

export interface TopCommandOptions {
  url?: string;
  interval?: string | number;
  once?: boolean;
  json?: boolean;
}

export const DEFAULT_METRICS_URL = 'http://127.0.0.1:8081/metrics';

async function scrape(url: string): Promise<Snapshot> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}${res.status === 403 ? ' (not in metrics.allow)' : res.status === 404 ? ' (is metrics: on?)' : ''}`);
  return { at: Date.now(), samples: parseExposition(await res.text()) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(opts: TopCommandOptions): Promise<number> {
  const url = opts.url ?? DEFAULT_METRICS_URL;
  const seconds = Number(opts.interval ?? 2);
  if (!(seconds > 0 && seconds <= 3600)) {
    process.stderr.write(`gatewayctl top: --interval must be a number of seconds (0 < s <= 3600), got ${opts.interval}\n`);
    return 2;
  }
  let prev: Snapshot;
  try {
    prev = await scrape(url);
  } catch (e) {
    process.stderr.write(`gatewayctl top: cannot read ${url}: ${(e as Error).message}\n`);
    return 1;
  }
  const live = !opts.once;
  if (live && !opts.json) process.stdout.write('\x1b[?25l\x1b[2J'); // hide the cursor, clear once
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  if (live) process.once('SIGINT', stop);
  try {
    for (;;) {
      await sleep(seconds * 1000);
      if (stopped) return 0;
      let cur: Snapshot;
      try {
        cur = await scrape(url);
      } catch (e) {
        if (!live) {
          process.stderr.write(`gatewayctl top: cannot read ${url}: ${(e as Error).message}\n`);
          return 1;
        }
        process.stdout.write(frame(`gatewayctl top — ${url}: ${(e as Error).message}; retrying\n`));
        continue;
      }
      const view = summarize(prev, cur);
      prev = cur;
      if (opts.json) process.stdout.write(`${JSON.stringify({ url, ...view })}\n`);
      else process.stdout.write(live ? frame(render(view, url, new Date(cur.at))) : render(view, url, new Date(cur.at)));
      if (!live || stopped) return 0;
    }
  } finally {
    if (live) {
      process.removeListener('SIGINT', stop);
      if (!opts.json) process.stdout.write('\x1b[?25h\n');
    }
  }
}
