// docker-compose.yml run for real: a private Docker engine (scripts/provision-docker.sh
// installs Debian's docker.io when missing), Debian's docker-compose
// (scripts/provision-compose.sh), and the images the stack needs built from Debian packages
// (no registry is reachable): the official nginx image's layout (scripts/nginx-image.sh)
// under docker/Dockerfile, and Node.js (scripts/node-image.sh) for the demo upstreams and
// docker/Dockerfile.tools. The stack is the repository's docker-compose.yml and docker/
// files, only with the images and host ports set through its environment variables, and the
// ACME server's CA mounted into the `tls` service (an override file).
//
// The ACME server is pebble (tests/tls/harness.ts) on the host's address, so the `tls`
// container reaches it; its HTTP-01 validation connects to the gateway's published port 80.
// Proven: the pending build answers on 80 (challenges; 503 otherwise) with 443 closed, the
// `tls` service issues with `gatewayctl tls issue`, deploys the rebuild and reloads; then
// HTTPS on 443 with the issued chain, 80 redirecting, the upstream replicas behind 8080/443,
// a forced `gatewayctl tls renew` in the service that reloads onto a new certificate, the
// log limits, and `down` removing everything.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { writeBuild } from '../../src/build/write.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { httpsRequest, send, sleep } from '../support/http.ts';
import { freePorts } from '../support/ports.ts';
import { startPebble, type Pebble } from '../tls/harness.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOMAIN = 'gw.compose.test';
const engineDir = process.env.GATEWAYCTL_COMPOSE_DOCKER_DIR ?? path.join(os.tmpdir(), 'gatewayctl-docker-compose');

/**
 * The private engine (scripts/provision-docker.sh) needs root: to install docker.io when it
 * is missing and to run dockerd (namespaces, mounts, bridges). Without root it cannot run;
 * as root (CI), a failure to install or start it fails the test instead.
 */
const engineImpossible = process.getuid?.() !== 0;

/** The host's own address (not loopback, not a bridge of an engine): containers reach the host there. */
function hostAddress(): string {
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (/^(lo|br-|docker|veth)/.test(name)) continue;
    const a = (addrs ?? []).find((x) => x.family === 'IPv4' && !x.internal);
    if (a) return a.address;
  }
  throw new Error('no non-loopback IPv4 address on this host for the containers to reach the ACME server');
}

const script = (name: string, args: string[] = [], env: Record<string, string> = {}): string => {
  const r = spawnSync('bash', [path.join(ROOT, 'scripts', name), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 540_000 });
  if (r.status !== 0) throw new Error(`scripts/${name} failed (${r.status}):\n${r.stderr}`);
  return r.stdout.trim().split('\n').pop()!.trim();
};

describe.skipIf(engineImpossible)('docker-compose.yml in a container engine', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'gw-compose-run-'));
  const project = path.join(work, 'project');
  const project_name = `gwc${process.pid}`;
  let dockerHost = '';
  let startedEngine = false;
  let composeCmd: string[] = [];
  let pebble: Pebble | undefined;
  let env: Record<string, string> = {};
  let ports = { http: 0, https: 0, plain: 0 };
  const images: string[] = [];

  const compose = (...args: string[]) => {
    const [cmd, ...pre] = composeCmd;
    return spawnSync(cmd!, [...pre, '-p', project_name, '-f', 'docker-compose.yml', '-f', path.join(work, 'override.yml'), ...args], {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 300_000,
    });
  };
  /** compose without blocking the event loop: pebble's DNS answers from this process meanwhile. */
  const composeAsync = (...args: string[]) => {
    const [cmd, ...pre] = composeCmd;
    return promisify(execFile)(cmd!, [...pre, '-p', project_name, '-f', 'docker-compose.yml', '-f', path.join(work, 'override.yml'), ...args], {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 120_000,
    });
  };
  const composeOk = (...args: string[]) => {
    const r = compose(...args);
    if (r.status !== 0) throw new Error(`compose ${args.join(' ')} failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
    return r.stdout;
  };
  const docker = (...args: string[]) => spawnSync('docker', args, { encoding: 'utf8', env: { ...process.env, DOCKER_HOST: dockerHost }, timeout: 60_000 });
  const logs = (service: string) => compose('logs', '--no-color', service).stdout;

  async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + ms;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        const v = await probe();
        if (v !== undefined) return v;
      } catch (e) {
        last = e;
      }
      await sleep(250);
    }
    throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
  }

  beforeAll(async () => {
    startedEngine = spawnSync('docker', ['version'], { env: { ...process.env, DOCKER_HOST: `unix://${engineDir}/docker.sock` } }).status !== 0;
    dockerHost = script('provision-docker.sh', ['--dir', engineDir, '--quiet']);
    composeCmd = script('provision-compose.sh', ['--quiet']).split(' ');
    const nginxImage = script('nginx-image.sh', [], { DOCKER_HOST: dockerHost });
    const nodeImage = script('node-image.sh', [], { DOCKER_HOST: dockerHost });
    images.push(nginxImage, nodeImage);

    // the project as a user has it: the repository's compose file and docker/ files, the
    // packed CLI and a build of docker/gateway.yaml in dist/
    mkdirSync(project);
    for (const f of ['docker-compose.yml', '.dockerignore', 'docker', 'monitoring']) cpSync(path.join(ROOT, f), path.join(project, f), { recursive: true });
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'pack-cli.mjs'), '--out', path.join(project, '.gatewayctl', 'cli')], { stdio: 'ignore' });

    const [http, https, plain] = await freePorts(3);
    ports = { http: http!, https: https!, plain: plain! };
    pebble = await startPebble({ httpPort: ports.http, listenIp: hostAddress() });
    env = {
      DOCKER_HOST: dockerHost,
      NGINX_IMAGE: nginxImage,
      NODE_IMAGE: nodeImage,
      GATEWAY_HTTP_PORT: String(ports.http),
      GATEWAY_HTTPS_PORT: String(ports.https),
      GATEWAY_PLAIN_PORT: String(ports.plain),
      GATEWAY_DOMAIN: DOMAIN,
      ACME_EMAIL: 'ops@compose.test',
      ACME_DIRECTORY: pebble.directory,
      RETRY_INTERVAL: '2',
    };
    // the build users make before `compose up` (same environment as the `tls` service)
    const r = compile(path.join(project, 'docker', 'gateway.yaml'), { env });
    expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
    expect(r.diagnostics.map((d) => d.code)).toContain('GW502'); // the certificate is pending
    writeBuild(path.join(project, 'dist'), r.files!);
    writeFileSync(
      path.join(work, 'override.yml'),
      `services:\n  tls:\n    environment:\n      GATEWAYCTL_ACME_CA: /run/acme-ca.pem\n    volumes:\n      - ${pebble.caFile}:/run/acme-ca.pem:ro\n`,
    );
  }, 600_000);

  afterAll(async () => {
    // the stack and every image this suite made (the engine's storage does not grow per run)
    if (composeCmd.length && existsSync(project)) compose('down', '-v', '--rmi', 'all', '--timeout', '5');
    if (dockerHost) {
      if (images.length) docker('rmi', '-f', ...images);
      docker('image', 'prune', '-f');
    }
    await pebble?.stop();
    rmSync(work, { recursive: true, force: true });
    if (startedEngine && dockerHost) {
      const pid = Number(spawnSync('cat', [path.join(engineDir, 'dockerd.pid')], { encoding: 'utf8' }).stdout.trim());
      if (pid > 0) process.kill(pid, 'SIGTERM');
    }
  }, 120_000);

  it('serves the ACME challenge before the certificate, issues and reloads, serves 80/443/8080 to the replicas, renews and reloads', { timeout: 300_000 }, async () => {
    composeOk('build', 'gateway');
    composeOk('build', 'tls');

    // 1. the gateway and the upstream replicas, before any certificate
    composeOk('up', '-d', '--no-build', 'gateway');
    const hello = await until('the gateway on the plain port', 30_000, async () => {
      const r = await send({ port: ports.plain, path: '/api/hello' });
      return r.status === 200 ? r : undefined;
    });
    expect((hello.json as { server: string; path: string }).server).toBe('api');
    expect((hello.json as { path: string }).path).toBe('/hello');
    const pending = await send({ port: ports.http, path: '/api/hello', headers: { Host: DOMAIN } });
    expect(pending.status, pending.text).toBe(503);
    expect((pending.json as { error: { code: string } }).error.code).toBe('certificate_pending');
    // the challenge location is the webroot's (404 for an unknown token), not the 503
    expect((await send({ port: ports.http, path: '/.well-known/acme-challenge/none', headers: { Host: DOMAIN } })).status).toBe(404);
    await expect(httpsRequest(ports.https, DOMAIN, pebble!.issuerRoot, '/api/hello')).rejects.toThrow();

    // 2. the tls service: issue (pebble validates through port 80), deploy the rebuild, reload
    const gatewayStarted = () => docker('inspect', '-f', '{{.State.StartedAt}} {{.State.Pid}}', `${project_name}_gateway_1`).stdout.trim();
    const started = gatewayStarted();
    await composeAsync('up', '-d', '--no-build', 'tls');
    const first = await until('HTTPS on 443 with the issued certificate', 90_000, async () => {
      const r = await httpsRequest(ports.https, DOMAIN, pebble!.issuerRoot, '/api/hello');
      return r.status === 200 ? r : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n--- tls service:\n${logs('tls')}\n--- gateway:\n${logs('gateway').slice(-3000)}`);
    });
    expect(JSON.parse(first.body).server).toBe('api');
    // the reloaded gateway answers before deploy has seen /ready report the release and says so
    await until('the tls service to report the deploy', 30_000, async () => (/deployed /.test(logs('tls')) ? true : undefined)).catch((e: Error) => {
      throw new Error(`${e.message}\n--- tls service:\n${logs('tls')}`);
    });
    // the gateway was reloaded, not restarted: the same container process (its nginx master)
    expect(gatewayStarted()).toBe(started);
    const redirect = await send({ port: ports.http, path: '/api/hello', headers: { Host: DOMAIN } });
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe(`https://${DOMAIN}/api/hello`);

    // 3. the llm replicas, behind both listeners
    const owners = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await httpsRequest(ports.https, DOMAIN, pebble!.issuerRoot, '/v1/models');
      expect(r.status).toBe(200);
      owners.add(String(r.headers['x-upstream']));
    }
    expect([...owners].sort()).toEqual(['llm-a', 'llm-b']);
    const chat = await send({
      port: ports.plain,
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'demo-small', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(chat.status).toBe(200);
    expect(chat.headers['content-type']).toMatch(/text\/event-stream/);
    expect(chat.text).toMatch(/data: \[DONE\]/);

    // 4. renewal: the service's own check (started again with a window that makes the
    // 5-year certificate due), then by hand with --force; each reloads onto a new certificate
    env.RENEW_DAYS = '3650';
    await composeAsync('up', '-d', '--no-build', 'tls');
    const renewed = await until('the certificate renewed by the tls service on 443', 60_000, async () => {
      const r = await httpsRequest(ports.https, DOMAIN, pebble!.issuerRoot, '/api/hello');
      return r.status === 200 && r.serial !== first.serial ? r : undefined;
    });
    // (the new certificate may be served before the service has printed that it renewed)
    const renewedLine = new RegExp(`renewed ${DOMAIN.replace(/\./g, '\\.')}`);
    await until('the tls service to report the renewal', 30_000, async () => (renewedLine.test(logs('tls')) ? true : undefined)).catch((e: Error) => {
      throw new Error(`${e.message}\n--- tls service:\n${logs('tls')}`);
    });
    expect(gatewayStarted()).toBe(started);
    // (exits non-zero, rejecting, when the renewal or the reload fails)
    const renew = await composeAsync('exec', '-T', 'tls', 'gatewayctl', 'tls', 'renew', '--force', '--config', '/srv/gateway/gateway.yaml', '--target', '/etc/gatewayctl', '--prefix', '/etc/nginx/');
    expect(renew.stderr).toMatch(/reloaded the deployment at \/etc\/gatewayctl/);
    expect(renew.stdout).toMatch(new RegExp(`renewed ${DOMAIN.replace(/\./g, '\\.')}`));
    const second = await until('the renewed certificate on 443', 30_000, async () => {
      const r = await httpsRequest(ports.https, DOMAIN, pebble!.issuerRoot, '/api/hello');
      return r.status === 200 && r.serial !== renewed.serial ? r : undefined;
    });
    expect(second.serial).not.toBe(first.serial);

    // 5. Docker rotates every container's log (the access log is the gateway's stdout)
    for (const s of ['gateway', 'tls', 'api', 'llm-a', 'llm-b']) {
      const lc = JSON.parse(docker('inspect', '-f', '{{json .HostConfig.LogConfig}}', `${project_name}_${s}_1`).stdout);
      expect(lc, s).toEqual({ Type: 'json-file', Config: { 'max-file': '5', 'max-size': '10m' } });
    }
    expect(logs('gateway')).toMatch(/"route":"api"/);

    // 6. down removes containers, volumes and networks
    composeOk('down', '-v', '--timeout', '5');
    expect(docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${project_name}`).stdout.trim()).toBe('');
    expect(docker('volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project_name}`).stdout.trim()).toBe('');
    expect(docker('network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project_name}`).stdout.trim()).toBe('');
  });
});
