// Traffic generator for the zero-downtime test, run as its own process (like real clients,
// it shares nothing with the deploying process, not even an event loop).
// Usage: node --import tsx tests/deploy/load-client.ts PORT EVENTS TOTAL_PER_KIND
// Prints "started" once the SSE stream is open, then one JSON line with the results.
import * as http from 'node:http';
import { steadyLoad } from './helpers.ts';
import { readSse } from '../support/http.ts';

const [port, events, total] = process.argv.slice(2).map(Number) as [number, number, number];
const stream = readSse(port, `/sse?events=${events}&intervalMs=100`, 60_000);
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 2 });
const started = Date.now();
const fresh = steadyLoad(port, { total, concurrency: 2, pauseMs: 60 });
const reused = steadyLoad(port, { total, concurrency: 2, pauseMs: 60, agent: keepAlive });
process.stdout.write('started\n');
const [a, k] = await Promise.all([fresh.done, reused.done]);
const sse = await stream;
keepAlive.destroy();
const plain = (s: typeof a) => ({ ...s, releases: Object.fromEntries(s.releases) });
process.stdout.write(`${JSON.stringify({ fresh: plain(a), keepAlive: plain(k), sse, elapsed: Date.now() - started })}\n`);
