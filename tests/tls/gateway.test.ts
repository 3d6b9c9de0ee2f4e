// The whole chain as an operator runs it: gateway.yaml with acme_webroot and a TLS listener
// (redirect_from + HSTS), `build`, real nginx from the build output, `tls issue` against
// pebble whose HTTP-01 request lands on the generated redirect server, then build + reload
// (the afterIssue hook the CLI wires) and HTTPS with the issued certificate.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as build } from '../../src/commands/build.ts';
import { run as tls } from '../../src/commands/tls.ts';
import { createSelfSigned } from '../../src/tls/index.ts';
import { startGateway, type Gateway } from '../support/nginx.ts';
import { startPebble, tempDir, tlsPeer, type Pebble } from './harness.ts';
import { freePort } from '../support/ports.ts';
import { httpsRequest, rawGet } from '../support/http.ts';

const DOMAIN = 'gw.test';
let pebble: Pebble;
let gw: Gateway;
let work: string;
let httpPort: number;
let httpsPort: number;

async function buildGateway(): Promise<void> {
  const code = await build({ config: path.join(work, 'gateway.yaml'), out: path.join(work, 'dist') });
  if (code !== 0) throw new Error('gatewayctl build failed');
}

beforeAll(async () => {
  work = await tempDir('gw-tls-gateway-');
  [httpPort, httpsPort] = [await freePort(), await freePort()];
  pebble = await startPebble({ httpPort });
  process.env.GATEWAYCTL_ACME_CA = pebble.caFile;
  // nginx needs some certificate to start: a self-signed placeholder at the managed paths
  const ph = await createSelfSigned({ domains: [DOMAIN], outDir: path.join(work, 'placeholder') });
  const dir = path.join(work, 'ssl/managed', DOMAIN);
  await fs.mkdir(dir, { recursive: true });
  await fs.copyFile(ph.cert, path.join(dir, 'fullchain.pem'));
  await fs.copyFile(ph.key, path.join(dir, 'privkey.pem'));
  await fs.mkdir(path.join(work, 'acme'), { recursive: true, mode: 0o755 });
  await fs.chmod(path.join(work, 'acme'), 0o755);
  await fs.writeFile(
    path.join(work, 'gateway.yaml'),
    `version: 1
global:
  acme_webroot: acme
listeners:
  - name: secure
    address: 127.0.0.1
    port: ${httpsPort}
    server_names: [${DOMAIN}]
    tls:
      cert: ssl/managed/${DOMAIN}/fullchain.pem
      key: ssl/managed/${DOMAIN}/privkey.pem
      profile: intermediate
      redirect_from: ${httpPort}
      hsts: { max_age: 600 }
routes:
  - name: hello
    match: { prefix: / }
    respond: { status: 200, body: "hello" }
`,
  );
  await buildGateway();
  gw = await startGateway({ distDir: path.join(work, 'dist'), ports: [httpPort, httpsPort] });
});

afterAll(async () => {
  await gw?.stop();
  await pebble?.stop();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('tls issue through a built gateway', () => {
  it('the generated redirect server answers ACME challenges and redirects the rest', async () => {
    const ch = path.join(work, 'acme/.well-known/acme-challenge');
    await fs.mkdir(ch, { recursive: true });
    await fs.chmod(path.join(work, 'acme/.well-known'), 0o755);
    await fs.chmod(ch, 0o755);
    await fs.writeFile(path.join(ch, 'probe'), 'probe');
    expect(await rawGet(httpPort, DOMAIN, '/.well-known/acme-challenge/probe')).toMatchObject({ status: 200, body: 'probe' });
    expect((await rawGet(httpPort, DOMAIN, '/anything')).status).toBe(301);
    await fs.rm(path.join(ch, 'probe'));
  });

  it('issues via the gateway, rebuilds, reloads and serves the CA-issued certificate', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await tls(
      'issue',
      {
        domain: [DOMAIN],
        email: 'ops@gw.test',
        directory: pebble.directory,
        webroot: path.join(work, 'acme'),
        certsDir: path.join(work, 'ssl/managed'),
      },
      {
        afterIssue: async () => {
          await buildGateway();
          await gw.reload();
        },
      },
      { out: (l) => out.push(l), err: (l) => err.push(l) },
    );
    expect(code, err.join('\n') + '\n' + gw.errorLog()).toBe(0);
    const meta = JSON.parse(await fs.readFile(path.join(work, 'ssl/managed', DOMAIN, 'meta.json'), 'utf8'));
    const deadline = Date.now() + 10_000;
    let peer = await tlsPeer(httpsPort, DOMAIN, pebble.issuerRoot);
    while (peer.serial !== meta.serial && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      peer = await tlsPeer(httpsPort, DOMAIN, pebble.issuerRoot);
    }
    expect(peer.serial).toBe(meta.serial);
    expect(peer.authorized, String(peer.authorizationError)).toBe(true);
    const res = await httpsRequest(httpsPort, DOMAIN, pebble.issuerRoot);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello');
    expect(res.headers['strict-transport-security']).toMatch(/^max-age=600/);
  });
});
