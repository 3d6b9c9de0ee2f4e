// Log rotation without losing lines, through real nginx: requests run in parallel while the
// access log is renamed and the master gets USR1 by the very command the shipped logrotate
// snippet (scripts/gatewayctl-logrotate) runs in postrotate. Every request sent is then in
// exactly one of the two files, each line whole JSON, and the new file took over.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePorts } from '../support/ports.ts';
import { get, sleep } from '../support/http.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SNIPPET = path.resolve(HERE, '..', '..', 'scripts', 'gatewayctl-logrotate');
const SHIPPED_PREFIX = '/srv/gateway/.gatewayctl/deploy';

const yaml = `
version: 1
global:
  worker_processes: 2
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
upstreams:
  app:
    servers: ["\${UPSTREAM}"]
routes:
  - name: api
    match: { prefix: /api/ }
    upstream: app
`;

let upstream: EchoUpstream;
let g: BuiltGateway;
let port: number;

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'app' });
  [port] = await freePorts(1);
  g = await buildAndStart({ configPath: path.join(HERE, 'rotate.gateway.yaml'), text: yaml, env: { PORT_GW: String(port), UPSTREAM: upstream.address }, ports: [port] });
});

afterAll(async () => {
  await g?.stop();
  await upstream?.close();
  await stopAllGateways();
});

/** the postrotate command of the shipped snippet, for a gateway whose prefix is `prefix` */
function postrotate(prefix: string): string {
  const text = readFileSync(SNIPPET, 'utf8');
  // the directive's own line: the word also ends a comment line above it
  const m = /^\s*postrotate\n([\s\S]*?)\n\s*endscript/m.exec(text);
  expect(m, 'the snippet has a postrotate script').not.toBeNull();
  expect(text).not.toMatch(/^\s*copytruncate/m);
  return m![1]!.trim().replaceAll(SHIPPED_PREFIX, prefix);
}

const uris = (file: string): string[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { uri: string }).uri);

describe('access log rotation (rename + USR1) under traffic', () => {
  it('loses no line and cuts none', async () => {
    await withErrorLog(g.gw, async () => {
      const log = path.join(g.gw.prefix, 'logs', 'access.log');
      const rotated = `${log}.1`;
      expect(existsSync(log)).toBe(true);
      const script = postrotate(g.gw.prefix);
      let n = 0;
      let stop = false;
      const client = async () => {
        while (!stop) {
          const i = n++;
          const res = await get(port, `/api/r?n=${i}`);
          expect(res.status).toBe(200);
        }
      };
      const clients = [client(), client(), client(), client()];
      while (n < 300) await sleep(5);
      renameSync(log, rotated); // what logrotate does first
      const atRename = n;
      execFileSync('sh', ['-c', script]); // then its postrotate: USR1 to the master
      while (n < atRename + 300) await sleep(5);
      stop = true;
      await Promise.all(clients);
      const sent = n;
      // the log phase runs after the answer: wait until every line is written
      let got: string[] = [];
      for (let i = 0; i < 100; i++) {
        got = existsSync(log) ? [...uris(rotated), ...uris(log)] : uris(rotated);
        if (got.length >= sent) break;
        await sleep(50);
      }
      const expected = Array.from({ length: sent }, (_, i) => `/api/r?n=${i}`);
      expect(got.length).toBe(sent);
      expect([...got].sort()).toEqual([...expected].sort());
      // the new file took over: it holds requests, and the renamed one stopped growing
      const fresh = uris(log);
      expect(fresh.length).toBeGreaterThan(0);
      const before = readFileSync(rotated, 'utf8').length;
      for (let i = 0; i < 20; i++) expect((await get(port, `/api/after?i=${i}`)).status).toBe(200);
      await sleep(200);
      expect(readFileSync(rotated, 'utf8').length).toBe(before);
    });
  }, 120_000);
});
