// The nginx runtime layer against the real project runtime (.runtime/, provisioned by
// scripts/provision-runtime.sh): discovery, versions and modules, prefix layout, nginx -t
// diagnostics, start/reload/stop, doctor, and the integration-test harness itself.

import { existsSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as doctor from '../src/commands/doctor.ts';
import {
  NginxError,
  NginxNotFoundError,
  PREFIX_DIRS,
  compareVersions,
  findNginx,
  isRunning,
  nginxInfo,
  parseNginxErrors,
  parseNginxV,
  preparePrefix,
  projectRoot,
  readPid,
  reloadNginx,
  startNginx,
  stopNginx,
  testConfig,
  type NginxInfo,
  type NginxLocation,
} from '../src/runtime/nginx/index.ts';
import { completeRawConf, rewriteRawConf, startGateway, startRawNginx, stopAllGateways, withErrorLog, type Gateway } from './support/nginx.ts';
import { capture } from './support/capture.ts';
import { getUrl, openWebSocket, stream, waitUntil } from './support/http.ts';
import { freePort } from './support/ports.ts';
import { closeAll, startEchoUpstream, type EchoUpstream } from './support/upstreams.ts';

const ROOT = projectRoot()!;
const RUNTIME_NGINX = path.join(ROOT, '.runtime', 'bin', 'nginx');

let loc: NginxLocation;
let info: NginxInfo;
const tmpDirs: string[] = [];

async function tmp(name: string): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), `gatewayctl-rt-${name}-`));
  tmpDirs.push(d);
  return d;
}

beforeAll(async () => {
  loc = await findNginx({});
  info = await nginxInfo(loc);
});

afterAll(async () => {
  await stopAllGateways();
  await Promise.all(tmpDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('findNginx', () => {
  const saved = { nginx: process.env.GATEWAYCTL_NGINX, rt: process.env.GATEWAYCTL_RUNTIME_DIR, path: process.env.PATH };
  beforeEach(() => {
    delete process.env.GATEWAYCTL_NGINX;
  });
  afterEach(() => {
    for (const [k, v] of [
      ['GATEWAYCTL_NGINX', saved.nginx],
      ['GATEWAYCTL_RUNTIME_DIR', saved.rt],
      ['PATH', saved.path],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('finds the project runtime with its modules directory', async () => {
    const l = await findNginx({});
    expect(l).toEqual({ bin: RUNTIME_NGINX, source: 'runtime', modulesDir: path.join(ROOT, '.runtime', 'modules') });
  });

  it('honours GATEWAYCTL_NGINX', async () => {
    const dir = await tmp('env');
    await mkdir(path.join(dir, 'bin'));
    const bin = path.join(dir, 'bin', 'nginx');
    await symlink(RUNTIME_NGINX, bin);
    process.env.GATEWAYCTL_NGINX = bin;
    const l = await findNginx({});
    expect(l.source).toBe('env');
    expect(l.bin).toBe(bin);
  });

  it('prefers an explicit flag over GATEWAYCTL_NGINX and resolves it against cwd', async () => {
    process.env.GATEWAYCTL_NGINX = '/nonexistent/nginx';
    const l = await findNginx({ nginx: '.runtime/bin/nginx', cwd: ROOT });
    expect(l).toMatchObject({ bin: RUNTIME_NGINX, source: 'flag', modulesDir: path.join(ROOT, '.runtime', 'modules') });
  });

  it('rejects an explicit path that is not an executable instead of falling back', async () => {
    const err = await findNginx({ nginx: '/nonexistent/nginx' }).catch((e) => e);
    expect(err).toBeInstanceOf(NginxNotFoundError);
    expect(err.code).toBe('NGINX_NOT_FOUND');
    expect(err.message).toContain('/nonexistent/nginx (no such file)');
    process.env.GATEWAYCTL_NGINX = path.join(ROOT, 'package.json'); // exists, not executable
    const err2 = await findNginx({}).catch((e) => e);
    expect(err2.message).toMatch(/GATEWAYCTL_NGINX.*not executable/);
  });

  it.skipIf(['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'].some(existsSync))(
    'says what is missing and how to provision when nothing is found',
    async () => {
      process.env.GATEWAYCTL_RUNTIME_DIR = '/nonexistent/runtime';
      process.env.PATH = '/nonexistent/bin';
      const err = await findNginx({}).catch((e) => e);
      expect(err).toBeInstanceOf(NginxNotFoundError);
      expect(err.message).toContain('/nonexistent/runtime/bin/nginx (not provisioned)');
      expect(err.fix).toContain('bash scripts/provision-runtime.sh');
      expect(err.tried.map((t: { source: string }) => t.source)).toEqual(['flag', 'env', 'runtime', 'path']);
    },
  );
});

describe('nginxInfo', () => {
  it('reports nginx >= 1.24 with the built-in modules generated configs use', () => {
    expect(compareVersions(info.version, '1.24.0')).toBeGreaterThanOrEqual(0);
    expect(info.builtinModules).toEqual(expect.arrayContaining(['http_v2', 'http_ssl', 'http_realip', 'http_stub_status', 'compat']));
    expect(info.openssl.builtWith).toMatch(/^OpenSSL 3\./);
  });

  it('finds njs >= 0.8 by asking a running nginx, and brotli', () => {
    expect(info.njs.module?.loads).toBe(true);
    expect(info.njs.versionSource).toBe('probe');
    expect(compareVersions(info.njs.version!, '0.8.0')).toBeGreaterThanOrEqual(0);
    expect(info.brotli?.loads).toBe(true);
    expect(info.availableModules).toContain('ngx_http_js_module.so');
  });

  it('reads the same njs version from the module binary when not probing', async () => {
    const quick = await nginxInfo(loc, { probeNjs: false });
    expect(quick.njs.versionSource).toBe('binary');
    expect(quick.njs.version).toBe(info.njs.version);
  });

  it('parses nginx -V output', () => {
    const v = parseNginxV(
      "nginx version: nginx/1.24.0\nbuilt with OpenSSL 3.0.2 15 Mar 2022\nTLS SNI support enabled\nconfigure arguments: --with-cc-opt='-g -O2' --prefix=/etc/nginx --with-http_ssl_module --with-stream=dynamic --with-compat\n",
    );
    expect(v.version).toBe('1.24.0');
    expect(v.versionNumber).toEqual([1, 24, 0]);
    expect(v.builtinModules).toEqual(['http_ssl', 'compat']);
    expect(v.configureArgs[0]).toBe('--with-cc-opt=-g -O2');
    expect(v.compiledPaths.prefix).toBe('/etc/nginx');
    expect(v.openssl.builtWith).toBe('OpenSSL 3.0.2 15 Mar 2022');
  });

  it('orders versions numerically', () => {
    expect(compareVersions('1.26.3', '1.24')).toBeGreaterThan(0);
    expect(compareVersions('0.8.10', '0.8.9')).toBeGreaterThan(0);
    expect(compareVersions('0.7.9', '0.8.0')).toBeLessThan(0);
  });
});

describe('preparePrefix', () => {
  it('creates the layout and the modules link, and is idempotent', async () => {
    const prefix = await tmp('prefix');
    const first = await preparePrefix(prefix, loc.modulesDir);
    const second = await preparePrefix(prefix, loc.modulesDir);
    expect(second).toEqual(first);
    for (const d of PREFIX_DIRS) expect(statSync(path.join(prefix, d)).isDirectory()).toBe(true);
    expect(lstatSync(path.join(prefix, 'modules')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(path.join(prefix, 'modules'))).toBe(loc.modulesDir);
    expect(existsSync(path.join(prefix, 'modules', 'ngx_http_js_module.so'))).toBe(true);
    expect(first.pidFile).toBe(path.join(prefix, 'run', 'nginx.pid'));
  });

  it('adds extra directories inside the prefix and refuses ones outside it', async () => {
    const prefix = await tmp('prefix-extra');
    const layout = await preparePrefix(prefix, null, { dirs: ['var/cache/api', 'logs'] });
    expect(statSync(path.join(prefix, 'var', 'cache', 'api')).isDirectory()).toBe(true);
    expect(layout.modules).toBeNull();
    expect(layout.dirs.filter((d) => d.endsWith(`${path.sep}logs`))).toHaveLength(1);
    await expect(preparePrefix(prefix, null, { dirs: ['../escape'] })).rejects.toThrow(/not a directory inside the prefix/);
    await expect(preparePrefix(prefix, null, { dirs: ['/abs'] })).rejects.toThrow(/not a directory inside the prefix/);
  });

  it('repoints a stale modules link', async () => {
    const prefix = await tmp('prefix-stale');
    await symlink('/nonexistent/modules', path.join(prefix, 'modules'));
    await preparePrefix(prefix, loc.modulesDir);
    expect(readlinkSync(path.join(prefix, 'modules'))).toBe(loc.modulesDir);
  });
});

describe('testConfig', () => {
  const good = ['pid run/nginx.pid;', 'error_log logs/error.log;', 'events {}', 'http {', '  client_body_temp_path temp/client_body;', '}', ''];

  it('accepts a valid config', async () => {
    const prefix = await tmp('t-ok');
    await preparePrefix(prefix, loc.modulesDir);
    const conf = path.join(prefix, 'nginx.conf');
    await writeFile(conf, good.join('\n'));
    const r = await testConfig(loc, prefix, conf);
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('reports file and line of a broken directive', async () => {
    const prefix = await tmp('t-bad');
    await preparePrefix(prefix, loc.modulesDir);
    await mkdir(path.join(prefix, 'conf.d'));
    const conf = path.join(prefix, 'nginx.conf');
    const inc = path.join(prefix, 'conf.d', '40-servers.conf');
    await writeFile(conf, good.join('\n').replace('http {', 'http {\n  include conf.d/*.conf;'));
    await writeFile(inc, 'server {\n  listen 127.0.0.1:1;\n  proxy_bogus on;\n}\n');
    const r = await testConfig(loc, prefix, conf);
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toEqual({ level: 'emerg', file: inc, line: 3, message: 'unknown directive "proxy_bogus"' });
    expect(r.output).toContain('test failed');
  });

  it('parses both stderr and error-log forms, with and without a location', () => {
    const errs = parseNginxErrors(
      [
        'nginx: [emerg] unexpected "}" in /x/nginx.conf:7',
        '2026/01/02 03:04:05 [emerg] 12#12: bind() to 0.0.0.0:80 failed (98: Address already in use)',
        'nginx: [warn] the "http2" parameter is deprecated in /x/conf.d/a.conf:2',
        'nginx: configuration file /x/nginx.conf test failed',
      ].join('\n'),
    );
    expect(errs).toEqual([
      { level: 'emerg', file: '/x/nginx.conf', line: 7, message: 'unexpected "}"' },
      { level: 'emerg', file: null, line: null, message: 'bind() to 0.0.0.0:80 failed (98: Address already in use)' },
      { level: 'warn', file: '/x/conf.d/a.conf', line: 2, message: 'the "http2" parameter is deprecated' },
    ]);
  });
});

const NJS_MAIN = `
function hello(r) {
  const n = ngx.shared.kv.incr('hits', 1, 0);
  r.headersOut['Content-Type'] = 'application/json';
  r.return(200, JSON.stringify({ njs: njs.version, hits: n, uri: r.uri }));
}
export default { hello };
`;

function njsConf(port: number): string {
  return `load_module modules/ngx_http_js_module.so;
events { worker_connections 64; }
http {
  access_log logs/access.log;
  js_import main.js;
  js_shared_dict_zone zone=kv:1m type=number;
  server {
    listen 127.0.0.1:${port};
    location / { js_content main.hello; }
  }
}
`;
}

describe('njs through a real request', () => {
  let gw: Gateway;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    gw = await startRawNginx(njsConf(port), [port], { files: { 'main.js': NJS_MAIN } });
  });
  afterAll(() => gw?.stop());

  it('loads njs >= 0.8 with js_import, js_content and js_shared_dict_zone', async () => {
    await withErrorLog(gw, async () => {
      const a = await getUrl(gw.url('/a'));
      const b = await getUrl(gw.url('/b'));
      expect(a.status).toBe(200);
      const ja = JSON.parse(a.body);
      const jb = JSON.parse(b.body);
      expect(compareVersions(ja.njs, '0.8.0')).toBeGreaterThanOrEqual(0);
      expect(ja.njs).toBe(info.njs.version);
      expect(jb.hits).toBe(ja.hits + 1); // shared dict survives across requests (and workers)
      // nginx writes the line in the log phase, after the response went out: it may trail the answer
      await waitUntil(() => gw.accessLog().includes('GET /b'), 5000, 'the access log line of GET /b');
    });
  });
});

describe('start, reload, stop', () => {
  const conf = (port: number, body: string) => `events {}
http {
  server { listen 127.0.0.1:${port}; location / { return 200 "${body}\\n"; } }
}
`;

  it('reload keeps serving and applies the new config', async () => {
    const port = await freePort();
    const gw = await startRawNginx(conf(port, 'v1'), [port]);
    try {
      await withErrorLog(gw, async () => {
        expect((await getUrl(gw.url('/'))).body).toBe('v1\n');
        // A request in flight across the reload still completes.
        const inFlight = getUrl(gw.url('/'));
        await rewriteRawConf(gw, conf(port, 'v2'));
        await gw.reload();
        expect((await inFlight).status).toBe(200);
        expect((await getUrl(gw.url('/'))).body).toBe('v2\n');
        expect(await readPid(gw.prefix)).toBe(gw.pid);
      });
    } finally {
      await gw.stop();
    }
    expect(existsSync(gw.prefix)).toBe(false);
  });

  it('a rejected reload fails with nginx\'s message and the old config keeps serving', async () => {
    const port = await freePort();
    const gw = await startRawNginx(conf(port, 'v1'), [port]);
    try {
      await writeFile(gw.confPath, (await readFile(gw.confPath, 'utf8')).replace('return 200', 'retrun 200'));
      const err = await gw.reload().catch((e) => e);
      expect(err).toBeInstanceOf(NginxError);
      expect(err.code).toBe('NGINX_RELOAD_FAILED');
      expect(err.message).toContain('unknown directive "retrun"');
      expect(err.message).toContain('--- nginx error log');
      expect((await getUrl(gw.url('/'))).body).toBe('v1\n');
    } finally {
      await gw.stop();
    }
  });

  it('daemonized start writes the pid file; isRunning / reload / graceful stop work on the prefix', async () => {
    const port = await freePort();
    const prefix = await tmp('daemon');
    await preparePrefix(prefix, loc.modulesDir);
    const confPath = path.join(prefix, 'nginx.conf');
    await writeFile(confPath, completeRawConf(conf(port, 'daemon')));
    const proc = await startNginx(loc, prefix, confPath);
    try {
      expect(proc.mode).toBe('daemon');
      expect(await readPid(prefix)).toBe(proc.pid);
      expect(await isRunning(prefix)).toBe(true);
      expect((await getUrl(`http://127.0.0.1:${port}/`)).body).toBe('daemon\n');
      const again = await startNginx(loc, prefix, confPath).catch((e) => e);
      expect(again.code).toBe('NGINX_ALREADY_RUNNING');
      await reloadNginx(prefix);
      expect((await getUrl(`http://127.0.0.1:${port}/`)).body).toBe('daemon\n');
      // A rejected config is reported from the default error log, quickly, not by timeout.
      await writeFile(confPath, completeRawConf(conf(port, 'daemon')).replace('events {}', 'events { bogus; }'));
      const t0 = Date.now();
      await expect(reloadNginx(prefix)).rejects.toMatchObject({ code: 'NGINX_RELOAD_FAILED', message: expect.stringContaining('unknown directive "bogus"') });
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      expect(await stopNginx(prefix, { graceful: true })).toBe(true);
    }
    expect(await isRunning(prefix)).toBe(false);
    expect(existsSync(path.join(prefix, 'run', 'nginx.pid'))).toBe(false);
    expect(await stopNginx(prefix, { graceful: true })).toBe(false);
    await expect(reloadNginx(prefix)).rejects.toMatchObject({ code: 'NGINX_NOT_RUNNING' });
  });

  it('startGateway runs a build directory: own pid/log paths, manifest prefix dirs, conf.d includes', async () => {
    const port = await freePort();
    const dist = await tmp('dist');
    await mkdir(path.join(dist, 'conf.d'));
    await writeFile(
      path.join(dist, 'nginx.conf'),
      `pid run/gw.pid;
error_log logs/gw-error.log info;
events {}
http {
  client_body_temp_path tmp/client_body;
  proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi;
  scgi_temp_path tmp/scgi;
  include conf.d/*.conf;
}
`,
    );
    await writeFile(
      path.join(dist, 'conf.d', '40-servers.conf'),
      `log_format plain '$request $status';
access_log logs/gw-access.log plain;
server { listen 127.0.0.1:${port}; location / { return 200 "dist\\n"; } }
`,
    );
    await writeFile(path.join(dist, 'manifest.json'), JSON.stringify({ prefixDirs: ['logs', 'run', 'tmp'] }));
    const gw = await startGateway({ distDir: dist, ports: [port] });
    try {
      await withErrorLog(gw, async () => {
        expect((await getUrl(gw.url('/hello'))).body).toBe('dist\n');
        expect(existsSync(path.join(gw.prefix, 'run', 'gw.pid'))).toBe(true);
        expect(existsSync(path.join(gw.prefix, 'run', 'nginx.pid'))).toBe(false);
        await gw.reload();
        expect((await getUrl(gw.url('/again'))).status).toBe(200);
        expect(gw.accessLog()).toMatch(/GET \/hello HTTP\/1\.1 200/);
        expect(gw.errorLog()).toContain('reconfiguring');
      });
    } finally {
      await gw.stop();
    }
  });

  it('a port already in use fails the start with nginx\'s reason', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const err = await startRawNginx(conf(port, 'x'), [port]).catch((e) => e);
      expect(err).toBeInstanceOf(NginxError);
      expect(err.code).toBe('NGINX_START_FAILED');
      expect(err.message).toContain('Address already in use');
    } finally {
      blocker.close();
    }
  });
});

describe('doctor', () => {
  it('returns 0 on this machine and names the njs version', async () => {
    const { code, stdout: out } = await capture(() => doctor.run({}));
    expect(code).toBe(0);
    expect(out).toContain(`njs ${info.njs.version}`);
    expect(out).toContain(`nginx ${info.version}`);
    expect(out).toMatch(/Ready/);
  });

  it('emits JSON and fails with a fix when the given nginx is missing', async () => {
    const report = await doctor.diagnose({});
    expect(report.ok).toBe(true);
    expect(report.njsVersion).toBe(info.njs.version);
    expect(report.checks.map((c) => c.id)).toEqual(['nginx', 'version', 'njs', 'brotli', 'builtins', 'openssl']);

    const { code, stdout: out } = await capture(() => doctor.run({ nginx: '/nonexistent/nginx', json: true }));
    expect(code).toBe(1);
    const json = JSON.parse(out);
    expect(json.ok).toBe(false);
    expect(json.checks[0]).toMatchObject({ id: 'nginx', status: 'fail' });
    expect(json.checks[0].fix).toContain('bash scripts/provision-runtime.sh');
    expect(doctor.help).toContain('gatewayctl doctor');
  });
});

describe('test support', () => {
  let ups: EchoUpstream[] = [];
  afterAll(() => closeAll(ups));

  it('freePort never repeats within a process', async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    expect(new Set(ports).size).toBe(20);
  });

  it('withErrorLog attaches the nginx error log to a failing assertion', async () => {
    const fake = { prefix: '/p', errorLog: () => '2026/01/01 00:00:00 [error] 1#1: *1 upstream timed out' };
    const err = await withErrorLog(fake, () => expect(1).toBe(2)).catch((e) => e);
    expect(err.message).toContain('upstream timed out');
    expect(err.message).toContain('--- nginx error log');
  });

  it('echo upstreams answer through nginx: JSON echo, SSE streamed, WebSocket echo', async () => {
    const a = await startEchoUpstream({ id: 'a' });
    ups.push(a);
    const port = await freePort();
    const gw = await startRawNginx(
      `events {}
http {
  upstream backend { server ${a.address}; keepalive 4; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
    location /ws {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }
  }
}
`,
      [port],
    );
    try {
      await withErrorLog(gw, async () => {
        const r = await getUrl(gw.url('/x?y=1'), { 'X-Test': 't' });
        expect(r.status).toBe(200);
        expect(r.headers['x-upstream-id']).toBe('a');
        expect(JSON.parse(r.body)).toMatchObject({ id: 'a', method: 'GET', path: '/x?y=1', headers: { 'x-test': 't' }, body: '' });
        expect(a.hits).toBe(1);

        // SSE: events arrive one by one, not buffered until the end.
        const arrivals: number[] = [];
        const sse = await stream({ url: gw.url('/sse?events=3&intervalMs=300') });
        expect(sse.headers['content-type']).toBe('text/event-stream');
        for (const c of sse.chunks) for (const _ of c.text.matchAll(/^data: /gm)) arrivals.push(c.ms);
        expect(arrivals).toHaveLength(3);
        // Buffered by nginx, all three would arrive together at the end.
        expect(arrivals[2] - arrivals[0]).toBeGreaterThanOrEqual(450);

        const slow = Date.now();
        expect((await getUrl(gw.url('/slow?ms=200'))).status).toBe(200);
        expect(Date.now() - slow).toBeGreaterThanOrEqual(190);
        expect((await getUrl(gw.url('/status/503'))).status).toBe(503);

        // WebSocket echo through nginx.
        const ws = await openWebSocket(port, '/ws', 't');
        let echoed: string;
        try {
          if (!ws.head.startsWith('HTTP/1.1 101')) throw new Error(ws.head);
          expect(ws.head).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
          ws.send('hello ws');
          echoed = (await ws.next()).text;
        } finally {
          ws.close();
        }
        expect(echoed).toBe('hello ws');
      });
    } finally {
      await gw.stop();
    }
  });
});
