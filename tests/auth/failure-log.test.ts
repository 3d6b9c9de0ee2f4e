// The auth-failure log keeps logging when the access log is switched off: nginx's
// `access_log off` cancels every access_log at its level, so the gateway never emits it next
// to a feature's own log (the failure log is one), through real nginx.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { startProject, type Project } from '../support/gateway.ts';
import { request } from '../support/http.ts';
import { freePort } from '../support/ports.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';

let project: Project;
let upstream: EchoUpstream;
let port: number;
let key: string;

beforeAll(async () => {
  upstream = await startEchoUpstream({ id: 'app' });
  port = await freePort();
  const store: KeyFile = { version: 1, keys: [] };
  key = createKey(store, { name: 'alice' }, new Date()).key;
  project = await startProject(
    {
      'gateway.yaml': `version: 1
global:
  status: false
  access_log: false
listeners:
  - name: public
    port: ${port}
upstreams:
  api:
    servers: [${upstream.address}]
auth:
  api_keys: { file: keys.yaml }
routes:
  - name: keyed
    match: { prefix: /k/ }
    upstream: api
    auth: api_key
`,
      'keys.yaml': serializeKeys(store),
    },
    [port],
  );
});

afterAll(async () => {
  await project?.stop();
  await upstream?.close();
});

describe('auth-failure log with the access log off', () => {
  it('a refused key is logged with its reason; an accepted one is not', async () => {
    const ok = await request(`http://127.0.0.1:${port}/k/fine`, { 'X-API-Key': key });
    expect(ok.status).toBe(200);
    const marker = `/k/refused-${Date.now()}`;
    const bad = await request(`http://127.0.0.1:${port}${marker}`, { 'X-API-Key': 'gw_not_a_real_key_0000000000000000' });
    expect(bad.status).toBe(401);
    const logFile = path.join(project.gw.prefix, 'logs/auth.log');
    let text = '';
    for (let i = 0; i < 40 && !text.includes(marker); i++) {
      try {
        text = readFileSync(logFile, 'utf8');
      } catch {
        // not written yet
      }
      if (!text.includes(marker)) await new Promise((r) => setTimeout(r, 50));
    }
    const lines = text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.path === marker), `${text}\n${project.gw.errorLog()}`).toMatchObject({ status: 401, reason: 'unknown_key', route: 'keyed' });
    expect(lines.some((l) => l.path === '/k/fine')).toBe(false);
  });
});
