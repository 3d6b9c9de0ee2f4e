// `tls issue` / `tls renew` make the gateway that serves the config load the new
// certificate, with the real CLI in the project directory: a gateway started by
// `gatewayctl deploy` (default target), one started by `gatewayctl up`, and a --reload-cmd.
// The served certificate is read back over a real TLS connection (its serial against
// meta.json). When nothing can be reloaded the command fails (exit 1), the certificate stays
// stored, and the next `tls renew` retries the reload. No dist/ appears in the working
// directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as build } from '../../src/commands/build.ts';
import { deploy } from '../../src/deploy/deploy.ts';
import { stopMaster } from '../../src/deploy/nginx.ts';
import { createSelfSigned, RELOAD_PENDING_FILE, type CertMeta } from '../../src/tls/index.ts';
import { ROOT, startPebble, tempDir, tlsPeer, type Pebble } from './harness.ts';
import { freePort } from '../support/ports.ts';

const DOMAIN = 'gw.test';
const CLI = path.join(ROOT, 'bin/gatewayctl.js');

let pebble: Pebble;
let work: string; // the deployed project
let target: string;
let httpPort: number;
let httpsPort: number;
let certsDir: string;
let webroot: string;

function gatewayYaml(httpsPort: number, statusPort: number, redirectFrom: number | null): string {
  return `version: 1
global:
  acme_webroot: ${webroot}
  status: { listen: "127.0.0.1:${statusPort}" }
listeners:
  - name: secure
    address: 127.0.0.1
    port: ${httpsPort}
    server_names: [${DOMAIN}]
    tls:
      cert: ${certsDir}/${DOMAIN}/fullchain.pem
      key: ${certsDir}/${DOMAIN}/privkey.pem
${redirectFrom ? `      redirect_from: ${redirectFrom}\n` : ''}routes:
  - name: hello
    match: { prefix: / }
    respond: { status: 200, body: "hello" }
`;
}

function cli(cwd: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn('node', [CLI, ...args], { cwd, env: { ...process.env, GATEWAYCTL_ACME_CA: pebble.caFile } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code: code ?? 1, out, err }));
  });
}

const acmeArgs = () => ['--certs-dir', certsDir];

async function meta(): Promise<CertMeta> {
  return JSON.parse(await fs.readFile(path.join(certsDir, DOMAIN, 'meta.json'), 'utf8')) as CertMeta;
}

async function served(port: number): Promise<string> {
  return (await tlsPeer(port, DOMAIN, pebble.issuerRoot)).serial;
}

/** For reloads the command does not wait for (--reload-cmd): the serial, once it changed. */
async function servedEventually(port: number, serial: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  let got = await served(port);
  while (got !== serial && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    got = await served(port);
  }
  return got;
}

const exists = (p: string) => fs.stat(p).then(() => true, () => false);

beforeAll(async () => {
  work = await tempDir('gw-tls-reload-');
  [httpPort, httpsPort] = [await freePort(), await freePort()];
  pebble = await startPebble({ httpPort });
  certsDir = path.join(work, 'ssl/managed');
  webroot = path.join(work, 'acme');
  await fs.mkdir(webroot, { recursive: true, mode: 0o755 });
  await fs.chmod(webroot, 0o755);
  // nginx needs some certificate to start: a self-signed placeholder at the managed paths
  const ph = await createSelfSigned({ domains: [DOMAIN], outDir: path.join(work, 'placeholder') });
  await fs.mkdir(path.join(certsDir, DOMAIN), { recursive: true });
  await fs.copyFile(ph.cert, path.join(certsDir, DOMAIN, 'fullchain.pem'));
  await fs.copyFile(ph.key, path.join(certsDir, DOMAIN, 'privkey.pem'));
  await fs.writeFile(path.join(work, 'gateway.yaml'), gatewayYaml(httpsPort, await freePort(), httpPort));
  expect(await build({ config: path.join(work, 'gateway.yaml'), out: path.join(work, 'build') })).toBe(0);
  target = path.join(work, '.gatewayctl/deploy');
  await deploy({ from: path.join(work, 'build'), target });
}, 60_000);

afterAll(async () => {
  if (target) await stopMaster(path.join(target, 'run/nginx.pid'));
  await pebble?.stop();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('a gateway started by gatewayctl deploy', () => {
  it('tls issue reloads it: the issued certificate is served', async () => {
    const before = await served(httpsPort);
    const r = await cli(work, ['tls', 'issue', '--domain', DOMAIN, '--email', 'ops@gw.test', '--directory', pebble.directory, '--webroot', webroot, ...acmeArgs()]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.err).toContain(`reloaded the deployment at ${target}`);
    const m = await meta();
    expect(m.serial).not.toBe(before);
    expect(await served(httpsPort)).toBe(m.serial);
    expect(await exists(path.join(work, 'dist'))).toBe(false);
  });

  it('tls renew reloads it: the renewed certificate is served, no dist/ in the working directory', async () => {
    const old = (await meta()).serial;
    const r = await cli(work, ['tls', 'renew', '--force', ...acmeArgs()]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain(`renewed ${DOMAIN}`);
    const m = await meta();
    expect(m.serial).not.toBe(old);
    expect(await served(httpsPort)).toBe(m.serial);
    expect(await exists(path.join(work, 'dist'))).toBe(false);
    expect(await exists(path.join(certsDir, RELOAD_PENDING_FILE))).toBe(false);
  });

  it('a failing reload fails the renewal loudly; the next renew reloads', async () => {
    const old = (await meta()).serial;
    const r = await cli(work, ['tls', 'renew', '--force', ...acmeArgs(), '--reload-cmd', 'echo reload refused >&2; exit 3']);
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.out).toContain(`renewed ${DOMAIN}`);
    expect(r.err).toMatch(/still serves the old certificate: reload command failed \(exit 3\)/);
    expect(r.err).toContain('reload refused');
    const renewed = (await meta()).serial;
    expect(renewed).not.toBe(old);
    expect(await served(httpsPort)).toBe(old); // on disk, not served
    expect(await exists(path.join(certsDir, RELOAD_PENDING_FILE))).toBe(true);

    // nothing is due, but the stored certificate was never loaded: this run reloads
    const again = await cli(work, ['tls', 'renew', ...acmeArgs()]);
    expect(again.code, again.out + again.err).toBe(0);
    expect(again.err).toContain('reloading now');
    expect(await served(httpsPort)).toBe(renewed);
    expect(await exists(path.join(certsDir, RELOAD_PENDING_FILE))).toBe(false);
  });

  it('--reload-cmd reloads through the given command', async () => {
    const pidFile = path.join(target, 'run/nginx.pid');
    const r = await cli(work, ['tls', 'renew', '--force', ...acmeArgs(), '--reload-cmd', `kill -HUP "$(cat '${pidFile}')"`]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.err).toContain('reloading with: kill -HUP');
    const m = await meta();
    expect(await servedEventually(httpsPort, m.serial)).toBe(m.serial);
  });
});

describe('no gateway to reload', () => {
  it('exits 1 naming where it looked; the certificate stays stored', async () => {
    const elsewhere = await tempDir('gw-tls-reload-none-');
    try {
      const old = (await meta()).serial;
      const r = await cli(elsewhere, ['tls', 'renew', '--force', ...acmeArgs()]);
      expect(r.code, r.out + r.err).toBe(1);
      expect(r.err).toContain('no running gateway found to reload');
      expect(r.err).toContain(`no deployment at ${path.join(elsewhere, '.gatewayctl/deploy')}`);
      expect(r.err).toContain('--reload-cmd');
      expect((await meta()).serial).not.toBe(old);
      expect(await exists(path.join(elsewhere, 'dist'))).toBe(false);
      expect(await exists(path.join(certsDir, RELOAD_PENDING_FILE))).toBe(true);
      // --no-reload: stored on purpose, exit 0
      const skip = await cli(elsewhere, ['tls', 'renew', ...acmeArgs(), '--no-reload']);
      expect(skip.code, skip.out + skip.err).toBe(0);
      expect(skip.err).toContain('--no-reload');
      expect(await exists(path.join(certsDir, RELOAD_PENDING_FILE))).toBe(true);
    } finally {
      await fs.rm(elsewhere, { recursive: true, force: true });
    }
  });
});

describe('a gateway started by gatewayctl up', () => {
  let up: ChildProcess | null = null;
  let dir: string;
  let port: number;

  beforeAll(async () => {
    dir = await tempDir('gw-tls-reload-up-');
    port = await freePort();
    await fs.writeFile(path.join(dir, 'gateway.yaml'), gatewayYaml(port, await freePort(), null));
    up = spawn('node', [CLI, 'up', '-c', 'gateway.yaml', '-o', 'out'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    up.stdout!.on('data', (d) => (log += d));
    up.stderr!.on('data', (d) => (log += d));
    const deadline = Date.now() + 30_000;
    while (!/nginx pid \d+/.test(log)) {
      if (up.exitCode !== null || Date.now() > deadline) throw new Error(`gatewayctl up did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  afterAll(async () => {
    if (up && up.exitCode === null) {
      const done = new Promise((r) => up!.once('exit', r));
      up.kill('SIGINT');
      await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
      if (up.exitCode === null) up.kill('SIGKILL');
    }
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('tls renew tests and reloads the configuration up runs', async () => {
    const old = (await meta()).serial;
    expect(await served(port)).toBe(old);
    const r = await cli(dir, ['tls', 'renew', '--force', ...acmeArgs()]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.err).toContain(`reloaded the gateway under ${path.join(dir, '.gatewayctl/run')} (${path.join(dir, 'out/nginx.conf')})`);
    const m = await meta();
    expect(m.serial).not.toBe(old);
    expect(await served(port)).toBe(m.serial);
    expect(await exists(path.join(dir, 'dist'))).toBe(false);
  });
});
