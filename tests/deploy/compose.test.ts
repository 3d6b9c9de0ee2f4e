// docker-compose.yml and docker/Dockerfile, checked statically: compose validates with
// docker-compose (provisioned by scripts/provision-compose.sh; no Docker engine needed),
// only the gateway publishes ports, upstreams sit on an internal network, and the image
// runs the build the way deploy does (prefix /etc/nginx/, /etc/gatewayctl/current).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compile } from '../../src/build/compile.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPOSE = path.join(ROOT, 'docker-compose.yml');

interface Service {
  build?: { context?: string; dockerfile?: string } | string;
  image?: string;
  ports?: unknown[];
  networks?: string[] | Record<string, unknown>;
  profiles?: string[];
  volumes?: string[];
}
interface ComposeFile {
  services: Record<string, Service>;
  networks: Record<string, { internal?: boolean } | null>;
}

// merge: the upstreams share one definition (`<<: *upstream`, as compose reads it)
const compose = () => parse(fs.readFileSync(COMPOSE, 'utf8'), { merge: true }) as ComposeFile;
const netsOf = (s: Service) => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {}));

/** Provision docker-compose (fails the test when it cannot be had) and return its argv prefix. */
function composeTool(): string[] {
  const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'provision-compose.sh'), '--quiet'], { encoding: 'utf8', timeout: 600_000 });
  expect(r.status, `scripts/provision-compose.sh failed:\n${r.stderr}`).toBe(0);
  const tool = r.stdout.trim().split('\n').pop()!.trim();
  expect(tool === 'docker-compose' || tool === 'docker compose', `unexpected tool line: ${tool}`).toBe(true);
  return tool.split(' ');
}

describe('docker-compose.yml', () => {
  it('is valid for docker-compose (static `config -q`, no engine)', { timeout: 600_000 }, () => {
    const [cmd, ...pre] = composeTool();
    const ok = spawnSync(cmd!, [...pre, '-f', COMPOSE, 'config', '-q'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(ok.status, ok.stderr).toBe(0);

    // The validator really validates: a broken copy is rejected.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatewayctl-compose-'));
    try {
      const bad = path.join(dir, 'docker-compose.yml');
      fs.writeFileSync(bad, 'services:\n  gateway:\n    image: nginx\n    ports: 8080\n    networks: [nope]\n');
      const r = spawnSync(cmd!, [...pre, '-f', bad, 'config', '-q'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      expect(r.status).not.toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('publishes ports only from the gateway; upstreams sit on an internal network', () => {
    const c = compose();
    const names = Object.keys(c.services);
    expect(names).toContain('gateway');
    expect(names).toContain('tls');
    for (const [name, s] of Object.entries(c.services)) {
      if (name === 'gateway') expect(s.ports?.length ?? 0).toBeGreaterThan(0);
      else if (name === 'tls') expect((s as { network_mode?: string }).network_mode).toBe('service:gateway'); // the gateway's network: publishes nothing of its own
      else if (name === 'grafana') expect(s.ports).toEqual(['127.0.0.1:3000:3000']); // the monitoring UI, on the host's loopback only
      else expect(s.ports, `${name} must not publish ports`).toBeUndefined();
    }
    const internal = Object.entries(c.networks)
      .filter(([, n]) => n?.internal === true)
      .map(([k]) => k);
    expect(internal.length).toBeGreaterThan(0);
    // the monitoring profile (Prometheus, Grafana) is checked below, not as an upstream
    const upstreams = names.filter((n) => n !== 'gateway' && n !== 'tls' && !(c.services[n]!.profiles ?? []).includes('monitoring'));
    expect(upstreams.length).toBeGreaterThanOrEqual(1);
    for (const u of upstreams) {
      const nets = netsOf(c.services[u]!);
      expect(nets.length, `${u} has no networks`).toBeGreaterThan(0);
      for (const n of nets) expect(internal, `${u} is on non-internal network ${n}`).toContain(n);
    }
    // The gateway reaches them (shares an internal network) and is reachable (a non-internal one).
    const gw = netsOf(c.services.gateway!);
    expect(gw.some((n) => internal.includes(n))).toBe(true);
    expect(gw.some((n) => !internal.includes(n))).toBe(true);
    // The gateway is built from docker/Dockerfile, the tls service (gatewayctl) from
    // docker/Dockerfile.tools on top of it.
    const build = c.services.gateway!.build as { context: string; dockerfile: string };
    expect(build.dockerfile).toBe('docker/Dockerfile');
    expect((c.services.tls!.build as { dockerfile: string }).dockerfile).toBe('docker/Dockerfile.tools');
    // tls reaches the gateway's nginx (pid file, SIGHUP, /ready on its loopback) and writes
    // what the gateway reads: the releases, the certificates, the ACME webroot
    const tls = c.services.tls as Service & { pid?: string };
    expect(tls.pid).toBe('service:gateway');
    const mounts = (s: Service) => new Map((s.volumes ?? []).map((v) => [v.split(':')[1]!, v.split(':')[0]!]));
    const gwMounts = mounts(c.services.gateway!);
    for (const target of ['/etc/gatewayctl', '/etc/nginx/run', '/var/lib/gatewayctl/certs', '/var/lib/gatewayctl/acme']) {
      expect(mounts(tls).get(target), target).toBeDefined();
      expect(mounts(tls).get(target)).toBe(gwMounts.get(target));
    }
    // Monitoring: opt-in; Prometheus only on the internal monitoring network, which the
    // gateway's status listener is reachable on.
    expect(c.services.prometheus!.profiles).toEqual(['monitoring']);
    expect(c.services.grafana!.profiles).toEqual(['monitoring']);
    expect(netsOf(c.services.prometheus!)).toEqual(['monitoring']);
    expect(internal).toContain('monitoring');
    expect(gw).toContain('monitoring');
    // Bind-mounted demo files exist.
    for (const s of Object.values(c.services)) {
      for (const v of s.volumes ?? []) {
        const src = v.split(':')[0]!;
        if (src.startsWith('./')) expect(fs.existsSync(path.join(ROOT, src)), v).toBe(true);
      }
    }
  });
});

describe('docker/Dockerfile', () => {
  const text = fs.readFileSync(path.join(ROOT, 'docker', 'Dockerfile'), 'utf8');

  it('uses the official nginx mainline image and runs the build like a deploy release', () => {
    expect(text).toMatch(/^ARG NGINX_IMAGE=nginx:1\.(2[7-9]|[3-9]\d)\b/m);
    expect(text).toMatch(/^FROM \$\{NGINX_IMAGE\}$/m);
    expect(text).toMatch(/^COPY \$\{DIST\}\/ \/etc\/gatewayctl\/releases\/\$\{RELEASE\}\/$/m);
    expect(text).toMatch(/ln -sfn "releases\/\$\{RELEASE\}" \/etc\/gatewayctl\/current/);
    // a release name deploy recognises (sequence 0), so /etc/gatewayctl is a deploy target
    const release = /^ARG RELEASE=(\S+)$/m.exec(text)?.[1];
    expect(release).toMatch(/^0000-\d{8}T\d{6}Z-[0-9a-f]{12}$/);
    expect(text).toMatch(/^CMD \["nginx", "-p", "\/etc\/nginx\/", "-c", "\/etc\/gatewayctl\/current\/nginx\.conf", "-g", "daemon off;"\]$/m);
    expect(text).toMatch(/^HEALTHCHECK .*\n\s+CMD curl -fsS .*GATEWAYCTL_HEALTH_URL/m);
    expect(text).toMatch(/ARG HEALTH_URL=http:\/\/127\.0\.0\.1:8080\/health/);
    for (const d of ['logs', 'run', 'cache', 'temp/$d']) expect(text).toContain(`/etc/nginx/${d}`);
    expect(text).toContain('/etc/nginx/modules/ngx_http_js_module.so');
  });

  it('the demo gateway.yaml builds, proxies to the compose upstreams and listens on the published port', async () => {
    const r = await compile(path.join(ROOT, 'docker', 'gateway.yaml'), { availableModules: { brotli: false } } as Parameters<typeof compile>[1]);
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const servers = r.files!['conf.d/40-servers.conf']!;
    const upstreams = r.files!['conf.d/30-upstreams.conf']!;
    expect(servers).toMatch(/listen 8080\b/);
    expect(servers).toMatch(/location = "?\/health"?/);
    const c = compose();
    for (const u of ['api', 'llm-a', 'llm-b']) {
      expect(upstreams).toMatch(new RegExp(`server ${u}:3000\\b`));
      expect(c.services[u]).toBeDefined();
    }
    expect(c.services.gateway!.ports).toEqual(['${GATEWAY_HTTP_PORT:-80}:80', '${GATEWAY_HTTPS_PORT:-443}:443', '${GATEWAY_PLAIN_PORT:-8080}:8080']);
  });
});
