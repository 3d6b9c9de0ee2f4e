// /metrics on a public listener behind auth: a route with `metrics: true` answers with the
// exposition after its own checks (API key or JWT, roles, access rules, limits), so Prometheus
// can scrape a gateway whose status listener it cannot reach. Through real nginx; the
// exposition is checked with promtool.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { stopAllGateways, withErrorLog } from '../support/nginx.ts';
import { freePort } from '../support/ports.ts';
import { send, sendCounted } from '../support/http.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let up: EchoUpstream;
let project: Project;
let port: number;
const keys: Record<string, string> = {};

const yaml = (upPort: number) => `version: 1
global: { status: false, worker_processes: 1 }
listeners:
  - { name: public, address: 127.0.0.1, port: ${port} }
upstreams:
  app: { servers: ["127.0.0.1:${upPort}"] }
metrics: { listener: public, path: /internal-metrics }
auth:
  api_keys: { file: keys.yaml }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: app }
  - name: scrape
    match: { exact: /metrics, methods: [GET] }
    auth: { methods: [api_key], roles: [ops] }
    metrics: true
`;

beforeAll(async () => {
  up = await startEchoUpstream({ id: 'app' });
  port = await freePort();
  const store: KeyFile = { version: 1, keys: [] };
  keys.ops = createKey(store, { name: 'prometheus', role: 'ops' }, new Date()).key;
  keys.user = createKey(store, { name: 'someone', role: 'user' }, new Date()).key;
  project = await startProject({ 'gateway.yaml': yaml(up.port), 'keys.yaml': serializeKeys(store) }, [port]);
});

afterAll(async () => {
  await project?.stop();
  await up?.close();
  await stopAllGateways();
});

describe('metrics behind auth on a listener route', () => {
  it('answers the exposition to the ops key only (401 without a key, 403 for another role) and counts the traffic', async () => {
    await withErrorLog(project.gw, async () => {
      for (let i = 0; i < 3; i++) expect((await send({ port, path: `/api/x${i}` })).status).toBe(200);
      expect((await sendCounted({ port, path: '/metrics' })).status).toBe(401);
      expect((await sendCounted({ port, path: '/metrics', headers: { 'X-API-Key': keys.user } })).status).toBe(403);
      const ok = await sendCounted({ port, path: '/metrics', headers: { 'X-API-Key': keys.ops } });
      expect(ok.status).toBe(200);
      expect(ok.headers['content-type']).toContain('text/plain');
      expect(ok.text).toMatch(/^gatewayctl_requests_total\{route="api",method="GET",code="200",status_class="2xx",upstream="app"\} 3$/m);
      const check = spawnSync('promtool', ['check', 'metrics'], { input: ok.text, encoding: 'utf8' });
      expect(check.error, 'promtool is required (Debian package prometheus)').toBeUndefined();
      expect(check.status, check.stdout + check.stderr).toBe(0);
    });
  });

  it('refuses metrics: true without a metrics block, or beside an upstream (positioned)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-scrape-'));
    const file = path.join(dir, 'gateway.yaml');
    writeFileSync(
      file,
      `version: 1
listeners: [{ name: public, port: 8080 }]
upstreams: { app: { servers: ["127.0.0.1:9"] } }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: app }
  - { name: scrape, match: { exact: /metrics }, upstream: app, metrics: true }
`,
    );
    const r = compile(file);
    const lines = r.diagnostics.map(formatDiagnostic);
    expect(r.ok).toBe(false);
    expect(lines.some((l) => / error GW528 routes\[1\]\.metrics: /.test(l) && l.includes('gateway.yaml:6:'))).toBe(true);
    expect(lines.some((l) => / error GW529 routes\[1\]\.upstream: /.test(l))).toBe(true);
  });
});
