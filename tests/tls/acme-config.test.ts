// tls.acme in gateway.yaml, end to end with the real CLI: before the first certificate the
// build is HTTP-only (challenges + health, 503 elsewhere) and nginx accepts it; it is
// deployed (`gatewayctl deploy`, default target). Then a bare `gatewayctl tls issue`
// (everything from gateway.yaml) obtains the certificate from pebble through that nginx,
// deploys a rebuild with the TLS listener as a new release, and the gateway serves HTTPS
// with it. Nothing is written to dist/ in the working directory.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { run as build } from '../../src/commands/build.ts';
import { deploy } from '../../src/deploy/deploy.ts';
import { stopMaster } from '../../src/deploy/nginx.ts';
import { linkedRelease } from '../../src/deploy/releases.ts';
import { startPebble, tempDir, tlsPeer, type Pebble, ROOT } from './harness.ts';
import { freePort } from '../support/ports.ts';
import { httpsRequest, rawGet } from '../support/http.ts';

const DOMAIN = 'acme.gw.test';
let pebble: Pebble;
let work: string;
let httpPort: number;
let httpsPort: number;
let target: string;

beforeAll(async () => {
  work = await tempDir('gw-tls-acme-config-');
  [httpPort, httpsPort] = [await freePort(), await freePort()];
  pebble = await startPebble({ httpPort });
  await fs.writeFile(
    path.join(work, 'gateway.yaml'),
    `version: 1
tls:
  acme:
    email: ops@gw.test
    domains: [${DOMAIN}]
    directory: ${pebble.directory}
listeners:
  - name: secure
    address: 127.0.0.1
    port: ${httpsPort}
    server_names: [${DOMAIN}]
    tls: { acme: true, redirect_from: ${httpPort}, hsts: { max_age: 600 } }
routes:
  - name: hello
    match: { prefix: / }
    respond: { status: 200, body: "hello over tls" }
`,
  );
  // the webroot must be readable by nginx workers
  await fs.mkdir(path.join(work, '.gatewayctl/acme'), { recursive: true, mode: 0o755 });
  await fs.chmod(work, 0o755);
  const code = await build({ config: path.join(work, 'gateway.yaml'), out: path.join(work, 'build') });
  expect(code).toBe(0);
  target = path.join(work, '.gatewayctl/deploy');
  await deploy({ from: path.join(work, 'build'), target });
});

afterAll(async () => {
  if (target) await stopMaster(path.join(target, 'run/nginx.pid'));
  await pebble?.stop();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('tls.acme in gateway.yaml', () => {
  it('before the first certificate: warns GW502 and serves challenges and health only', async () => {
    const r = compile(path.join(work, 'gateway.yaml'));
    expect(r.ok).toBe(true);
    expect(r.diagnostics.map((d) => d.code)).toContain('GW502');
    expect(r.files!['conf.d/40-servers.conf']).not.toContain('ssl_certificate');
    const res = await rawGet(httpPort, DOMAIN, '/anything');
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body).error.code).toBe('certificate_pending');
    expect((await rawGet(httpPort, DOMAIN, '/health')).status).toBe(200);
  });

  it('`gatewayctl tls issue` with no flags issues, deploys the rebuild and serves HTTPS', async () => {
    const pendingRelease = await linkedRelease(path.join(target, 'current'));
    const cli = path.join(ROOT, 'bin/gatewayctl.js');
    const env = { ...process.env, GATEWAYCTL_ACME_CA: pebble.caFile };
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      import('node:child_process').then(({ spawn }) => {
        const p = spawn('node', [cli, 'tls', 'issue'], { cwd: work, env });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        p.on('close', (code) => resolve({ code: code ?? 1, out }));
      });
    });
    const errorLog = await fs.readFile(path.join(target, 'logs/error.log'), 'utf8').catch(() => '');
    expect(r.code, `${r.out}\n${errorLog}\n${pebble.log()}`).toBe(0);
    expect(r.out).toContain('the live release predates the certificate');
    const release = await linkedRelease(path.join(target, 'current'));
    expect(release).not.toBe(pendingRelease);
    expect(r.out).toContain(`deployed ${release}`);
    expect(await fs.stat(path.join(work, 'dist')).catch(() => null)).toBeNull();
    const meta = JSON.parse(await fs.readFile(path.join(work, 'ssl/managed', DOMAIN, 'meta.json'), 'utf8'));
    const deadline = Date.now() + 10_000;
    let peer = await tlsPeer(httpsPort, DOMAIN, pebble.issuerRoot).catch(() => null);
    while (peer?.serial !== meta.serial && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      peer = await tlsPeer(httpsPort, DOMAIN, pebble.issuerRoot).catch(() => null);
    }
    expect(peer?.serial).toBe(meta.serial);
    expect(peer?.authorized).toBe(true);
    const res = await httpsRequest(httpsPort, DOMAIN, pebble.issuerRoot);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello over tls');
    expect((await rawGet(httpPort, DOMAIN, '/x')).status).toBe(301);
  });
});
