// Test harness for the TLS suite: free ports, openssl, a private nginx runner and a pebble
// ACME server on loopback. Nothing here is skipped silently: missing tools throw.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { startDns, type DnsServer } from './dns.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NGINX = path.join(ROOT, '.runtime', 'bin', 'nginx');
export const OPENSSL = path.join(ROOT, '.runtime', 'bin', 'openssl');

export function requireRuntime(): void {
  if (!existsSync(NGINX) || !existsSync(OPENSSL))
    throw new Error(`project runtime missing (${NGINX}); run: bash scripts/provision-runtime.sh`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
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

async function waitForPort(port: number, child: ChildProcess, what: string, log: () => string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}:\n${log()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1');
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

/** Starts nginx with `httpBody` placed inside `http { }`; waits for all ports. */
export async function startNginx(httpBody: string, ports: number[]): Promise<Nginx> {
  requireRuntime();
  const dir = await tempDir('gw-tls-nginx-');
  for (const d of ['logs', 'tmp']) await fs.mkdir(path.join(dir, d), { recursive: true });
  const user = process.getuid?.() === 0 ? 'user nobody nogroup;\n' : '';
  const confText = (httpBody: string) => `${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log info;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
${httpBody}
}
`;
  const conf = confText(httpBody);
  await fs.writeFile(path.join(dir, 'nginx.conf'), conf);
  const child = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  for (const p of ports) await waitForPort(p, child, 'nginx', () => out + '\n' + conf);
  return {
    dir,
    pid: child.pid!,
    async reload() {
      process.kill(child.pid!, 'SIGHUP');
    },
    async configure(body: string) {
      const file = path.join(dir, 'nginx.conf');
      await fs.writeFile(file + '.tmp', confText(body));
      await fs.rename(file + '.tmp', file);
      process.kill(child.pid!, 'SIGHUP');
    },
    async stop() {
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT');
        await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    },
    errorLog: () => fs.readFile(path.join(dir, 'logs', 'error.log'), 'utf8').catch(() => ''),
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

export function httpsGet(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`))));
      })
      .on('error', reject);
  });
}

/** Starts pebble on loopback; HTTP-01 validation goes to 127.0.0.1:httpPort. */
export async function startPebble(opts: { httpPort: number; blocklist?: string[] }): Promise<Pebble> {
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
  await fs.writeFile(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  for (const args of steps) {
    const r = await run(OPENSSL, args);
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  }
  const [acmePort, mgmtPort, tlsPort] = [await freePort(), await freePort(), await freePort()];
  const dns = await startDns();
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
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
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await waitForPort(acmePort, child, 'pebble', () => out);
  await waitForPort(mgmtPort, child, 'pebble management', () => out);
  const caPem = await fs.readFile(ca, 'utf8');
  const issuerRoot = await httpsGet(`https://127.0.0.1:${mgmtPort}/roots/0`, caPem);
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
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

/** One HTTPS GET on a fresh connection; resolves status, headers, body and peer serial. */
export function httpsRequest(
  port: number,
  servername: string,
  ca: string,
  pathname = '/',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: pathname, servername, ca, agent: false, headers: { host: servername }, timeout: 5000 },
      (res) => {
        const serial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber?.toUpperCase() ?? '';
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, serial }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('https request timeout')));
    req.end();
  });
}

export function httpGet(port: number, host: string, pathname: string): Promise<{ status: number; body: string; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = net.connect(port, '127.0.0.1', () => {
      req.write(`GET ${pathname} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      const [head, ...rest] = raw.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0);
      const location = /\r\nlocation: *([^\r\n]+)/i.exec(head)?.[1];
      resolve({ status, body: rest.join('\r\n\r\n'), location });
    });
    req.on('error', reject);
  });
}
