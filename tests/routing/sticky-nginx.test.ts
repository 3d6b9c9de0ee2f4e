// Sticky cookies the gateway starts, through real nginx (both runtimes): with `issue: gateway`
// a first-time client is hashed on its request id and gets that value as the cookie on its
// first answer, so it is pinned from then on, and `gatewayctl route --key <cookie value>`
// names the server it reached. `issue: nginx` (nginx's own sticky cookie, nginx >= 1.29.6)
// runs on the newer runtime and is refused (GW503) for the older one; `issue: upstream` keeps
// hashing on a cookie the backend sets (no Set-Cookie from the gateway).
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileForTarget } from '../../src/commands/build.ts';
import { run as routeCommand } from '../../src/commands/route.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { explainRoute } from '../../src/routing/explain.ts';
import { PROJECT_ROOT } from '../../src/version.ts';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { freePort } from '../support/ports.ts';
import { closeAll, startUpstreams, type EchoUpstream } from '../support/upstreams.ts';
import { withErrorLog } from '../support/nginx.ts';
import { send, type HttpResponse } from '../support/http.ts';
import { capture } from '../support/capture.ts';

const OLDEST = path.join(PROJECT_ROOT, '.runtime/bin/nginx');
const ON_NEXT = !!process.env.GATEWAYCTL_NGINX?.includes('.runtime-next');

let ups: EchoUpstream[] = [];
let port: number;
let gw: BuiltGateway;
let dir: string;

const yaml = (a: string[], p: number, native: boolean) => `version: 1
global: { status: false, worker_processes: 2 }
listeners:
  - { name: main, port: ${p}, address: 127.0.0.1 }
upstreams:
  app:
    sticky: { cookie: gw_srv, issue: gateway, max_age: 1h, secure: true, samesite: strict }
    servers: [${a[0]}, ${a[1]}, ${a[2]}]
  backend:
    sticky: { cookie: app_session }
    servers: [${a[0]}, ${a[1]}, ${a[2]}]
${native ? `  native:\n    sticky: { cookie: srv, issue: nginx, max_age: 1h }\n    servers: [${a[0]}, ${a[1]}, ${a[2]}]\n` : ''}routes:
  - { name: app, match: { prefix: /app/ }, upstream: app }
  - { name: backend, match: { prefix: /backend/ }, upstream: backend }
${native ? '  - { name: native, match: { prefix: /native/ }, upstream: native }\n' : ''}`;

const idOf = (addr: string | null) => ups.find((u) => u.address === addr)?.id ?? `(${addr})`;
const setCookie = (r: HttpResponse): string[] => (r.headers['set-cookie'] as string[] | undefined) ?? [];
const cookieValue = (r: HttpResponse, name: string) => {
  const c = setCookie(r).find((x) => x.startsWith(`${name}=`));
  return c ? c.slice(name.length + 1).split(';')[0] : null;
};

beforeAll(async () => {
  ups = await startUpstreams(3, { idPrefix: 's' });
  port = await freePort();
  dir = mkdtempSync(path.join(tmpdir(), 'gw-sticky-'));
  const text = yaml(ups.map((u) => u.address), port, ON_NEXT);
  writeFileSync(path.join(dir, 'gateway.yaml'), text);
  gw = await buildAndStart({ configPath: path.join(dir, 'gateway.yaml'), env: {}, ports: [port] });
});

afterAll(async () => {
  await gw?.stop();
  await closeAll(ups);
});

describe('sticky issue: gateway', () => {
  it('a new client is pinned from its first answer, where `gatewayctl route` says', async () => {
    await withErrorLog(gw.gw, async () => {
      const servers = new Set<string>();
      for (let c = 0; c < 12; c++) {
        const first = await send({ port, path: `/app/first-${c}` });
        expect(first.status).toBe(200);
        const value = cookieValue(first, 'gw_srv');
        expect(value, JSON.stringify(first.headers)).toMatch(/^[0-9a-f]{32}$/);
        expect(setCookie(first)[0]).toBe(`gw_srv=${value}; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict`);
        const server = first.headers['x-upstream-id'] as string;
        servers.add(server);
        // the first request was hashed on the value the cookie carries
        expect(idOf(explainRoute(gw.model, value!, { upstream: 'app' }).peer)).toBe(server);
        for (let i = 0; i < 4; i++) {
          const next = await send({ port, path: `/app/next-${c}-${i}`, headers: { Cookie: `other=1; gw_srv=${value}` } });
          expect(next.headers['x-upstream-id']).toBe(server);
          expect(setCookie(next)).toEqual([]); // a client with the cookie is not given another
        }
      }
      expect(servers.size).toBeGreaterThan(1); // new clients are spread over the ring
    });
  });

  it('`gatewayctl route --key <cookie value>` prints the same server and says where a new client\'s key comes from', async () => {
    const first = await send({ port, path: '/app/cli' });
    const value = cookieValue(first, 'gw_srv')!;
    const out = await capture(() => routeCommand({ config: path.join(dir, 'gateway.yaml'), key: value, upstream: 'app', json: true }));
    expect(out.code, out.stderr).toBe(0);
    const e = JSON.parse(out.stdout);
    expect(idOf(e.peer)).toBe(first.headers['x-upstream-id']);
    expect(e.keySource).toContain('the gateway then sets as gw_srv');
  });

  it('issue: upstream (the default) sets no cookie and hashes on the backend\'s', async () => {
    const r = await send({ port, path: '/backend/x' });
    expect(r.status).toBe(200);
    expect(setCookie(r)).toEqual([]);
    const pinned = await send({ port, path: '/backend/y', headers: { Cookie: 'app_session=abc' } });
    expect(pinned.headers['x-upstream-id']).toBe(idOf(explainRoute(gw.model, 'abc', { upstream: 'backend' }).peer));
  });
});

describe('sticky issue: nginx', () => {
  it('is refused for a target older than 1.29.6 (GW503 at the sticky key)', async () => {
    const f = path.join(dir, 'native.yaml');
    writeFileSync(f, yaml(ups.map((u) => u.address), port, true));
    const r = await compileForTarget({ config: f, nginx: OLDEST });
    expect(r.ok).toBe(false);
    const lines = r.diagnostics.map(formatDiagnostic);
    expect(lines.some((l) => /native\.yaml:\d+:\d+ error GW503 upstreams\.native\.sticky: nginx's own sticky cookie \(issue: nginx\) needs nginx >= 1\.29\.6; the target .* has nginx 1\.26/.test(l)), lines.join('\n')).toBe(true);
  });

  it.runIf(ON_NEXT)('on nginx >= 1.29.6: the first answer sets the cookie naming the server, which `gatewayctl route` resolves', async () => {
    await withErrorLog(gw.gw, async () => {
      for (let c = 0; c < 6; c++) {
        const first = await send({ port, path: `/native/first-${c}` });
        const value = cookieValue(first, 'srv');
        expect(value, JSON.stringify(first.headers)).toMatch(/^[0-9a-f]{32}$/);
        const server = first.headers['x-upstream-id'] as string;
        expect(idOf(explainRoute(gw.model, value!, { upstream: 'native' }).peer)).toBe(server);
        for (let i = 0; i < 3; i++) {
          const next = await send({ port, path: `/native/next-${c}-${i}`, headers: { Cookie: `srv=${value}` } });
          expect(next.headers['x-upstream-id']).toBe(server);
        }
      }
    });
  });
});
