// Pure pieces of deploy: nginx.conf main directives, secret-file policy, release names,
// readiness addresses, manifest validation.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isSecretFile } from '../../src/deploy/fsutil.ts';
import { mainDirectives } from '../../src/deploy/nginxconf.ts';
import { listenKey, rewriteForShadow, shadowAddress } from '../../src/deploy/shadow.ts';
import { connectAddress } from '../../src/deploy/ready.ts';
import { compareReleases, isReleaseName, readManifest, releaseName, releaseSeq, releaseTime } from '../../src/deploy/releases.ts';
import { tempDir } from './helpers.ts';

describe('mainDirectives', () => {
  it('reads top-level pid and error_log, quoted or not, ignoring nested and commented ones', () => {
    const d = mainDirectives(`# pid nope.pid;
worker_processes auto;
pid "run/nginx.pid";
error_log 'logs/error.log' warn;
error_log stderr;
events { worker_connections 1024; }
http {
    error_log logs/http.log;
    server { error_log "logs/s{1}.log"; location / { return 200 "a;b}"; } }
}
`);
    expect(d).toEqual({ pid: 'run/nginx.pid', errorLogs: ['logs/error.log'] });
    expect(mainDirectives('events {}\n')).toEqual({ pid: null, errorLogs: [] });
  });
});

describe('isSecretFile', () => {
  const key = Buffer.from('-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----\n');
  const cert = Buffer.from('-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n');
  const plain = Buffer.from('{}');
  it.each([
    ['tls/site.key', plain, 0o644, true],
    ['tls/privkey.pem', key, 0o644, true],
    ['tls/fullchain.pem', cert, 0o644, false],
    ['njs/secrets.json', plain, 0o644, true],
    ['njs/api-keys.json', plain, 0o644, true],
    ['njs/jwks-private.json', plain, 0o644, true],
    ['njs/monkeys.json', plain, 0o644, false],
    ['njs/routes.json', plain, 0o644, false],
    ['keys/store.txt', plain, 0o644, true],
    ['conf.d/40-servers.conf', plain, 0o600, true],
    ['nginx.conf', plain, 0o644, false],
  ])('%s → %s', (rel, content, mode, want) => {
    expect(isSecretFile(rel as string, content as Buffer, mode as number)).toBe(want);
  });
});

describe('release names', () => {
  it('carry a sequence number, the time and the output hash, and sort by sequence', () => {
    const h = 'ab'.repeat(32);
    const a = releaseName(7, new Date('2026-11-23T16:55:15.123Z'), h);
    expect(a).toBe('0007-20261123T165515.123Z-abababababab');
    expect(isReleaseName(a)).toBe(true);
    expect(releaseSeq(a)).toBe(7);
    expect(isReleaseName('.tmp-x')).toBe(false);
    expect(releaseTime(a)).toBe('2026-11-23T16:55:15.123Z');
    // Sequence 10 sorts after 9 even when its clock went backwards; 10000 after 9999.
    const b = releaseName(10, new Date('2026-11-23T16:00:00.000Z'), h);
    const c = releaseName(10000, new Date('2026-11-23T16:00:00.000Z'), h);
    const d = releaseName(9999, new Date('2026-11-23T16:00:00.000Z'), h);
    // Names from older versions (<time>-<input hash>[-n]) are still releases, oldest of all.
    const legacy = '20261123T165515.123Z-abababababab';
    expect(isReleaseName(legacy)).toBe(true);
    expect(isReleaseName(`${legacy}-2`)).toBe(true);
    expect(releaseSeq(legacy)).toBe(0);
    expect(releaseTime(legacy)).toBe('2026-11-23T16:55:15.123Z');
    expect([c, b, legacy, d, a].sort(compareReleases)).toEqual([legacy, a, b, d, c]);
  });
});

describe('connectAddress', () => {
  it('maps wildcards to loopback and parses IPv6', () => {
    expect(connectAddress('127.0.0.1:8081')).toEqual({ host: '127.0.0.1', port: 8081 });
    expect(connectAddress('0.0.0.0:80')).toEqual({ host: '127.0.0.1', port: 80 });
    expect(connectAddress('*:80')).toEqual({ host: '127.0.0.1', port: 80 });
    expect(connectAddress('8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(connectAddress('[::]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(() => connectAddress('host:99999')).toThrow(/bad readiness/);
  });
});

describe('readManifest', () => {
  it('accepts the compiler shape and the "url path" spelling, rejects unsafe or incomplete ones', async () => {
    const dir = await tempDir('manifest');
    const write = (m: unknown) => fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
    const sha = 'c'.repeat(64);
    write({ input: { file: 'g.yaml', sha256: sha }, version: '0.1.0', files: { 'nginx.conf': sha }, readiness: { path: '/ready', listen: '127.0.0.1:8081' } });
    expect((await readManifest(dir)).readiness).toEqual({ path: '/ready', listen: '127.0.0.1:8081' });
    write({ input: { file: 'g.yaml', sha256: sha }, files: { 'nginx.conf': sha }, readiness: { 'url path': '/r', listen: '127.0.0.1:1' } });
    expect((await readManifest(dir)).readiness).toEqual({ path: '/r', listen: '127.0.0.1:1' });
    write({ input: { sha256: sha }, files: { 'nginx.conf': sha }, readiness: { path: '/ready', listen: '127.0.0.1:8443' }, listeners: [{ name: 'https', port: 8443, tls: true }] });
    expect((await readManifest(dir)).readiness).toEqual({ path: '/ready', listen: '127.0.0.1:8443', tls: true });
    write({ input: { sha256: sha }, files: { 'nginx.conf': sha }, readiness: { path: '/ready', listen: '127.0.0.1:80', host: 'api.example.com', health: '/health' } });
    expect((await readManifest(dir)).readiness).toEqual({ path: '/ready', listen: '127.0.0.1:80', host: 'api.example.com', health: '/health' });
    write({ input: { sha256: sha }, files: { 'nginx.conf': sha }, readiness: { path: '/ready', listen: '127.0.0.1:80', host: 'evil\r\nx: y', health: 'no-slash' } });
    expect((await readManifest(dir)).readiness).toEqual({ path: '/ready', listen: '127.0.0.1:80' });
    write({ input: { sha256: sha }, files: { 'nginx.conf': sha }, listeners: [{ name: 'https', port: 443, tls: true, certificatePending: true }, { name: 'web', port: 80, tls: false }] });
    expect((await readManifest(dir)).certificatePending).toEqual(['https']);
    write({ input: { sha256: 'nope' }, files: { 'nginx.conf': sha } });
    await expect(readManifest(dir)).rejects.toThrow(/input.sha256/);
    write({ input: { sha256: sha }, files: { '../etc/passwd': sha, 'nginx.conf': sha } });
    await expect(readManifest(dir)).rejects.toThrow(/escapes/);
    write({ input: { sha256: sha }, files: {} });
    await expect(readManifest(dir)).rejects.toThrow(/nginx.conf/);
    fs.rmSync(dir, { recursive: true, force: true });
    await expect(readManifest(dir)).rejects.toThrow(/not found/);
  });
});

describe('rewriteForShadow', () => {
  it('moves every listen address inside server blocks to its own loopback port, and nothing else', async () => {
    let next = 40000;
    const alloc = async () => next++;
    const main = `worker_processes auto;
pid "/run/nginx.pid";
error_log /var/log/nginx/error.log warn;
events { worker_connections 64; }
http {
    map $gw_model $gw_up { "listen" a; default b; }
    server { listen 8080 default_server; listen [::]:8080 ipv6only=on; server_name _; }
    include conf.d/*.conf;
}
`;
    const servers = `# listen 1.2.3.4:1;
server {
    listen 127.0.0.1:8443 ssl reuseport;
    server_name "api.example.com";
    location / { return 200 "listen 9999;"; }
}
server {
    listen 127.0.0.1:8443 ssl;
    server_name "www.example.com";
}
server {
    listen 0.0.0.0:8080;
}
`;
    const rw = await rewriteForShadow({ 'nginx.conf': main, 'conf.d/40-servers.conf': servers, 'conf.d/00-maps.conf': 'map $a $b { default 1; }\n' }, alloc);
    expect([...rw.addrs.entries()]).toEqual([
      ['127.0.0.1:8443', '127.0.0.1:40000'],
      ['*:8080', '127.0.0.1:40001'],
      ['[::]:8080', '127.0.0.1:40002'],
    ]);
    expect(rw.files['conf.d/40-servers.conf']).toBe(servers.replace(/127\.0\.0\.1:8443/g, '127.0.0.1:40000').replace('0.0.0.0:8080', '127.0.0.1:40001'));
    expect(rw.files['nginx.conf']).toBe(
      main
        .replace('worker_processes auto', 'worker_processes 1')
        .replace('"/run/nginx.pid"', '"run/nginx.pid"')
        .replace('/var/log/nginx/error.log', '"logs/error.log"')
        .replace('listen 8080 default_server', 'listen 127.0.0.1:40001 default_server')
        .replace('listen [::]:8080 ipv6only=on', 'listen 127.0.0.1:40002 '),
    );
    expect(rw.files['conf.d/00-maps.conf']).toBeUndefined();
    expect(shadowAddress(rw.addrs, '127.0.0.1:8080')).toBe('127.0.0.1:40001');
    expect(shadowAddress(rw.addrs, '127.0.0.1:8443')).toBe('127.0.0.1:40000');
    expect(shadowAddress(rw.addrs, '127.0.0.1:9')).toBeNull();
    expect(listenKey('80')).toBe('*:80');
    expect(listenKey('[::]:80')).toBe('[::]:80');
    expect(listenKey('[::1]:443')).toBe('[::1]:443');
    expect(listenKey('example.com')).toBe('example.com:80');
  });
});
