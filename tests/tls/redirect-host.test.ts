// The plain-HTTP → HTTPS redirect of a listener with server_names never copies the client's
// Host into Location: a configured name (or a route host, or a plain-label name under a
// wildcard) is kept, anything else goes to the first server name. Real nginx, built config.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { writeBuild } from '../../src/build/write.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { createSelfSigned } from '../../src/tls/index.ts';
import { startGateway, type Gateway } from '../support/nginx.ts';
import { tempDir } from './harness.ts';
import { freePort } from '../support/ports.ts';
import { rawGet } from '../support/http.ts';

let gw: Gateway;
let work: string;
let httpPort: number;
let httpsPort: number;

beforeAll(async () => {
  work = await tempDir('gw-tls-redirect-');
  [httpPort, httpsPort] = [await freePort(), await freePort()];
  const pair = await createSelfSigned({ domains: ['gw.test', '*.wild.test', 'api.test'], outDir: path.join(work, 'ssl') });
  await fs.writeFile(
    path.join(work, 'gateway.yaml'),
    `version: 1
global:
  status: false
listeners:
  - name: secure
    address: 127.0.0.1
    port: ${httpsPort}
    server_names: ["*.wild.test", gw.test]
    tls:
      cert: ${path.relative(work, pair.cert)}
      key: ${path.relative(work, pair.key)}
      redirect_from: ${httpPort}
routes:
  - name: hello
    match: { prefix: / }
    respond: { status: 200, body: "hello" }
  - name: api
    match: { prefix: /api/, host: api.test }
    respond: { status: 200, body: "api" }
`,
  );
  const r = compile(path.join(work, 'gateway.yaml'));
  if (!r.ok || !r.files) throw new Error(r.diagnostics.map(formatDiagnostic).join('\n'));
  writeBuild(path.join(work, 'dist'), r.files);
  await fs.chmod(work, 0o755);
  gw = await startGateway({ distDir: path.join(work, 'dist'), ports: [httpPort, httpsPort] });
});

afterAll(async () => {
  await gw?.stop();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('HTTP → HTTPS redirect target', () => {
  const target = (host: string) => `https://${host}:${httpsPort}/v1/x?y=1`;

  it('a foreign Host is redirected to the first configured name, not echoed', async () => {
    const r = await rawGet(httpPort, 'evil.example', '/v1/x?y=1');
    expect(r.status, gw.errorLog()).toBe(301);
    expect(r.location).toBe(target('gw.test'));
  });

  it('configured names, route hosts and plain names under a wildcard are kept (any case in, the configured name out)', async () => {
    expect((await rawGet(httpPort, 'gw.test', '/v1/x?y=1')).location).toBe(target('gw.test'));
    expect((await rawGet(httpPort, 'GW.Test:80', '/v1/x?y=1')).location).toBe(target('gw.test'));
    expect((await rawGet(httpPort, 'api.test', '/v1/x?y=1')).location).toBe(target('api.test'));
    expect((await rawGet(httpPort, 'eu.wild.test', '/v1/x?y=1')).location).toBe(target('eu.wild.test'));
  });

  it('a Host that only looks like a wildcard match (userinfo trick) goes to the first name', async () => {
    const r = await rawGet(httpPort, 'evil.example@x.wild.test', '/v1/x?y=1');
    expect(r.status, gw.errorLog()).toBe(301);
    expect(r.location).toBe(target('gw.test'));
  });
});
