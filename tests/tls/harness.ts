// Test harness for the TLS suite: openssl, an nginx on a hand-written http { } body (built on
// the shared raw-config runner), a pebble ACME server on loopback and TLS handshake probes.
// Ports, HTTP(S) requests and the nginx runner itself come from tests/support. Nothing here
// is skipped silently: missing tools throw.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { rewriteRawConf, startRawNginx } from '../support/nginx.ts';
import { httpsGet } from '../support/http.ts';
import { freePort } from '../support/ports.ts';
import { startDns, type DnsServer } from './dns.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NGINX = path.join(ROOT, '.runtime', 'bin', 'nginx');
export const OPENSSL = path.join(ROOT, '.runtime', 'bin', 'openssl');

export function requireRuntime(): void {
  if (!existsSync(NGINX) || !existsSync(OPENSSL))
    throw new Error(`project runtime missing (${NGINX}); run: bash scripts/provision-runtime.sh`);
}

export async function tempDir(prefix: string): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  // nginx workers run as nobody when the tests run as root: let them traverse.
  await fs.chmod(d, 0o755);
  return d;
}

export function run(bin: string, args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(bin, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number) ?? 1 : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
    // a tool that exits without reading stdin makes this write fail with EPIPE: not an error
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

async function waitForPort(port: number, child: ChildProcess, what: string, log: () => string, ms = 15_000, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}:\n${log()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, host);
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on ${port}:\n${log()}`);
}

// ---------------------------------------------------------------------------------- nginx

export interface Nginx {
  dir: string;
  pid: number;
  reload(): Promise<void>;
  /** Replaces the http { } body and reloads (SIGHUP), like a gateway rebuild + reload. */
  configure(httpBody: string): Promise<void>;
  stop(): Promise<void>;
  errorLog(): Promise<string>;
}

/**
 * Starts nginx (the shared raw-config runner, tests/support/nginx.ts) with `httpBody` placed
 * inside `http { }`; waits for all ports. reload() and configure() send SIGHUP and return at
 * once, like an operator's reload: callers poll for the effect.
 */
export async function startNginx(httpBody: string, ports: number[]): Promise<Nginx> {
  requireRuntime();
  const user = process.getuid?.() === 0 ? 'user nobody nogroup;\n' : '';
  const confText = (httpBody: string) => `${user}worker_processes 1;
error_log logs/error.log info;
events { worker_connections 256; }
http {
  access_log off;
${httpBody}
}
`;
  const gw = await startRawNginx(confText(httpBody), ports);
  return {
    dir: gw.prefix,
    pid: gw.pid,
    async reload() {
      process.kill(gw.pid, 'SIGHUP');
    },
    async configure(body: string) {
      await rewriteRawConf(gw, confText(body));
      process.kill(gw.pid, 'SIGHUP');
    },
    stop: () => gw.stop(),
    errorLog: async () => gw.errorLog(),
  };
}

// --------------------------------------------------------------------------------- pebble

export interface Pebble {
  directory: string; // ACME directory URL
  caFile: string; // PEM trusted for pebble's own HTTPS listener
  issuerRoot: string; // PEM of the root pebble issues under (from /roots/0)
  dns: DnsServer;
  log(): string;
  stop(): Promise<void>;
}

function findPebble(): string {
  const env = process.env.GATEWAYCTL_PEBBLE;
  if (env) return env;
  const which = spawnSync('sh', ['-c', 'command -v pebble'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  const prov = spawnSync('bash', [path.join(ROOT, 'scripts', 'provision-pebble.sh'), '--quiet'], { encoding: 'utf8' });
  const again = spawnSync('sh', ['-c', 'command -v pebble'], { encoding: 'utf8' });
  if (again.status === 0 && again.stdout.trim()) return again.stdout.trim();
  throw new Error(
    `pebble (ACME test server) is not available and scripts/provision-pebble.sh could not install it:\n${prov.stderr}${prov.stdout}`,
  );
}

/**
 * Starts pebble on loopback (or on `listenIp`, for clients in a container); HTTP-01
 * validation goes to 127.0.0.1:httpPort.
 */
export async function startPebble(opts: { httpPort: number; blocklist?: string[]; listenIp?: string }): Promise<Pebble> {
  const listenIp = opts.listenIp ?? '127.0.0.1';
  const bin = findPebble();
  const dir = await tempDir('gw-tls-pebble-');
  // pebble's own listener certificate: a throwaway CA and a leaf for 127.0.0.1/localhost.
  const ca = path.join(dir, 'ca.pem');
  const caKey = path.join(dir, 'ca.key');
  const leaf = path.join(dir, 'leaf.pem');
  const leafKey = path.join(dir, 'leaf.key');
  const csr = path.join(dir, 'leaf.csr');
  const ext = path.join(dir, 'leaf.ext');
  const steps: string[][] = [
    ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', caKey, '-out', ca, '-days', '30', '-subj', '/CN=gatewayctl test pebble listener CA'],
    ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', leafKey, '-out', csr, '-subj', '/CN=localhost'],
    ['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', leaf, '-days', '30', '-extfile', ext],
  ];
  await fs.writeFile(ext, `subjectAltName=DNS:localhost,IP:127.0.0.1${listenIp === '127.0.0.1' ? '' : `,IP:${listenIp}`}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  for (const args of steps) {
    const r = await run(OPENSSL, args);
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  }
  const [acmePort, mgmtPort, tlsPort] = [await freePort(), await freePort(), await freePort()];
  const dns = await startDns();
  const config = {
    pebble: {
      listenAddress: `${listenIp}:${acmePort}`,
      managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: leaf,
      privateKey: leafKey,
      httpPort: opts.httpPort,
      tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      domainBlocklist: opts.blocklist ?? [],
    },
  };
  await fs.writeFile(path.join(dir, 'pebble-config.json'), JSON.stringify(config, null, 2));
  const child = spawn(bin, ['-config', path.join(dir, 'pebble-config.json'), '-dnsserver', `127.0.0.1:${dns.port}`], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    // AUTHZREUSE=0 still reuses a valid authorization one order in a hundred (pebble's test is
    // rand.Intn(100) > percent): a test that needs a validation orders a name never validated
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await waitForPort(acmePort, child, 'pebble', () => out, 15_000, listenIp);
  await waitForPort(mgmtPort, child, 'pebble management', () => out);
  const caPem = await fs.readFile(ca, 'utf8');
  const issuerRoot = await httpsGet(`https://127.0.0.1:${mgmtPort}/roots/0`, caPem);
  return {
    directory: `https://${listenIp}:${acmePort}/dir`,
    caFile: ca,
    issuerRoot,
    dns,
    log: () => out,
    async stop() {
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await dns.close();
    },
  };
}

// ------------------------------------------------------------------------------ TLS probes

export interface PeerInfo {
  serial: string;
  issuer: string;
  subjectaltname: string | undefined;
  authorized: boolean;
  authorizationError: string | null;
  alpn: string | false | null;
  protocol: string | null;
}

/** Connects with SNI and verification against `ca`; returns the peer certificate facts. */
export function tlsPeer(port: number, servername: string, ca: string, alpn?: string[]): Promise<PeerInfo> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false, ALPNProtocols: alpn });
    s.once('secureConnect', () => {
      const c = s.getPeerCertificate();
      const info: PeerInfo = {
        serial: c.serialNumber.toUpperCase(),
        issuer: Object.entries(c.issuer ?? {}).map(([k, v]) => `${k}=${v}`).join(', '),
        subjectaltname: c.subjectaltname,
        authorized: s.authorized,
        authorizationError: s.authorizationError ? String(s.authorizationError) : null,
        alpn: s.alpnProtocol,
        protocol: s.getProtocol(),
      };
      s.end();
      resolve(info);
    });
    s.once('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('tls connect timeout')));
  });
}
