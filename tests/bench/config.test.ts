// `gatewayctl bench -c` end to end: the CLI runs a small config (a plain route, an API-key
// route, an HS256 JWT route, a model route, a regex route, and a JWKS route given a token with
// --header) against its stub upstream with short durations. Every route must be measured with
// 2xx answers that reached the stub, each row with a finite positive ratio to plain nginx —
// never a timing. The user's files stay as they were and no nginx is left running.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { describe, expect, it } from 'vitest';
import { compile, type Manifest } from '../../src/build/compile.ts';
import type { ConfigReport } from '../../src/bench/run.ts';
import { hasCallgrind } from '../../src/bench/run.ts';
import { formatReport } from '../../src/commands/bench.ts';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'gatewayctl.js');

const YAML = `version: 1
listeners:
  - { name: public, port: 8080 }
upstreams:
  api: { servers: ["10.255.0.1:8080", "api.internal.invalid:9000"], keepalive: 16 }
  llm: { servers: ["llm.internal.invalid:443"] }
models:
  - { id: bench-model, upstream: llm }
limits:
  rate:
    per_client: { key: client_id, rate: 1r/s, burst: 1 }
routes:
  - { name: plain, match: { exact: /plain }, upstream: api }
  - { name: keyed, match: { prefix: /keyed/ }, upstream: api, auth: api_key, rate_limits: [per_client] }
  - { name: hs, match: { exact: /hs }, upstream: api, auth: { methods: [jwt], jwt_provider: hs }, rate_limits: [per_client] }
  - { name: es, match: { exact: /es }, upstream: api, auth: { methods: [jwt], jwt_provider: es } }
  - { name: chat, match: { exact: /v1/chat/completions, methods: [POST] }, models: route }
  - { name: files, match: { regex: '^/files/[a-z]+/(\\d+)\\.txt$' }, upstream: api }
  - { name: shadowed, match: { regex: '^/pla[i]n$' }, upstream: api }
auth:
  api_keys: { file: keys.yaml }
  jwt:
    hs: { algorithms: [HS256], secret_file: hs.secret, issuer: [https://issuer.example] }
    es: { algorithms: [ES256], jwks_file: jwks.json }
`;

async function project(): Promise<{ dir: string; config: string; esToken: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-bench-c-'));
  writeFileSync(path.join(dir, 'keys.yaml'), 'version: 1\nkeys: []\n');
  writeFileSync(path.join(dir, 'hs.secret'), 'bench-config-secret-0123456789abcdef0123456789\n');
  const ec = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'e1', alg: 'ES256' }] }));
  const esToken = await new SignJWT({ sub: 'someone' }).setProtectedHeader({ alg: 'ES256', kid: 'e1' }).setExpirationTime('2h').sign(ec.privateKey as CryptoKey);
  const config = path.join(dir, 'gateway.yaml');
  writeFileSync(config, YAML);
  return { dir, config, esToken };
}

function cli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, timeout: 240_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Processes of a bench -c run: wrk (its script is in the work directory) and nginx with a file open there (workers rename themselves, their fds stay). */
function benchProcesses(): number[] {
  const out: number[] = [];
  const work = path.join(os.tmpdir(), 'gatewayctl-bench-c-');
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes(work)) {
        out.push(Number(p));
        continue;
      }
      if (!cmd.includes('nginx')) continue;
      if (readdirSync(`/proc/${p}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${p}/fd/${fd}`).startsWith(work);
        } catch {
          return false;
        }
      })) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

const workDirs = () => readdirSync(os.tmpdir()).filter((d) => d.startsWith('gatewayctl-bench-c-'));

const SHORT = ['--seconds', '0.5', '--rounds', '2', '--warmup', '0.3', '--connections', '4', '--threads', '1', '--json'];

describe('gatewayctl bench -c', () => {
  it('measures every route of the config: 2xx answers that reached the stub, a finite positive ratio each', async () => {
    const { dir, config, esToken } = await project();
    const before = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]));
    const r = await cli(['bench', '-c', config, ...SHORT, '--route', 'plain,keyed,hs,es,chat,files', '--header', `es=Authorization: Bearer ${esToken}`], dir);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as ConfigReport;
    expect(report.rows.map((x) => x.route)).toEqual(['plain', 'keyed', 'hs', 'es', 'chat', 'files']);
    const manifest = JSON.parse(compile(config, { env: {} }).files!['manifest.json']) as Manifest;
    for (const row of report.rows) {
      const what = `${row.route}: ${JSON.stringify(row)}`;
      expect(row.skipped, what).toBeNull();
      expect(row.status, what).toBeGreaterThanOrEqual(200);
      expect(row.status, what).toBeLessThan(300);
      expect(row.requests, what).toBeGreaterThan(0);
      // every measured request was proxied to the stub (health probes would only add)
      expect(row.proxied, what).toBe(true);
      expect(row.upstreamRequests, what).toBeGreaterThanOrEqual(row.requests);
      for (const x of [row.cpuRatio!.median, row.cpuRatio!.min, row.cpuRatioOfMedians!, row.cpuUs!.median]) {
        expect(Number.isFinite(x) && x > 0, what).toBe(true);
      }
      expect(row.njsCalls, what).toBe(manifest.routes.find((m) => m.name === row.route)!.njsCalls);
      // user + system time (/proc ticks) accounts for the scheduler's CPU time, within tick noise
      const ticks = row.userUs! + row.sysUs!;
      expect(row.userUs! >= 0 && row.sysUs! >= 0, what).toBe(true);
      expect(ticks, what).toBeGreaterThan(row.cpuUs!.median * 0.5);
      expect(ticks, what).toBeLessThan(row.cpuUs!.median * 1.5);
    }
    expect(report.baseline.getUserUs + report.baseline.getSysUs).toBeGreaterThan(0);
    // the table shows the split
    expect(formatReport(report)).toMatch(/CPU µs\/req\s+user \+ sys\s+CPU ratio/);
    expect(report.rows.find((x) => x.route === 'keyed')).toMatchObject({ credential: 'api_key', method: 'GET', path: '/keyed/' });
    expect(report.rows.find((x) => x.route === 'hs')).toMatchObject({ credential: 'jwt' });
    expect(report.rows.find((x) => x.route === 'es')).toMatchObject({ credential: 'given' });
    expect(report.rows.find((x) => x.route === 'chat')).toMatchObject({ method: 'POST' });
    expect(report.rows.find((x) => x.route === 'files')!.path).toMatch(/^\/files\/[a-z]+\/\d+\.txt$/);
    // the project is as it was (the key store only read), and nothing is left running
    expect(Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]))).toEqual(before);
    expect(benchProcesses()).toEqual([]);
  }, 240_000);

  it('a JWKS route without a token, and a route whose request another route answers, are skipped with the reason (exit 3)', async () => {
    const { dir, config } = await project();
    const r = await cli(['bench', '-c', config, ...SHORT, '--route', 'plain,es,shadowed'], dir);
    expect(r.code, r.stderr).toBe(3);
    const report = JSON.parse(r.stdout) as ConfigReport;
    expect(report.rows.map((x) => [x.route, x.skipped === null])).toEqual([
      ['plain', true],
      ['es', false],
      ['shadowed', false],
    ]);
    expect(report.rows[1].skipped).toMatch(/no HMAC secret.*--header 'es=Authorization: Bearer/);
    // nginx takes the exact /plain location before any regex: the sample /plain reaches `plain`
    expect(report.rows[2].skipped).toBe("the request GET /plain is answered by route plain, not this one; pass --path 'shadowed=/…'");
    expect(benchProcesses()).toEqual([]);
  }, 240_000);

  it('Ctrl-C mid-run: every nginx and load client it started is stopped and its directory removed', async () => {
    const { dir, config } = await project();
    const dirsBefore = workDirs();
    const child = spawn(process.execPath, [CLI, 'bench', '-c', config, '--seconds', '5', '--rounds', '3'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const running: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no warm-up started:\n${err}`)), 120_000);
      child.stderr.on('data', (d) => {
        err += d;
        if (/warm-up plain/.test(err) && !running.length) {
          running.push(...benchProcesses()); // stub, baseline and gateway, measuring
          clearTimeout(t);
          resolve();
        }
      });
    });
    expect(running.length, err).toBeGreaterThanOrEqual(3);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(130);
    expect(benchProcesses()).toEqual([]);
    expect(workDirs().filter((d) => !dirsBefore.includes(d))).toEqual([]);
  }, 240_000);

  it('refuses a config with raw nginx snippets (GW580) before starting anything', async () => {
    const { dir, config } = await project();
    writeFileSync(config, YAML.replace('listeners:', 'global:\n  unsafe_nginx_http: "map $host $x { default 1; }"\nlisteners:'));
    const r = await cli(['bench', '-c', config, ...SHORT], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/gateway\.yaml:3:3 error GW580 global\.unsafe_nginx_http/);
    expect(r.stderr).toContain('cannot be benchmarked');
  });

  it.runIf(hasCallgrind())('--instructions: instruction counts per route under callgrind', async () => {
    const { dir, config } = await project();
    const r = await cli(['bench', '-c', config, ...SHORT, '--route', 'plain,hs', '--instructions', '20'], dir);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as ConfigReport;
    expect(report.baseline.instructions).toBeGreaterThan(0);
    for (const row of report.rows) expect(row.instructions!.ratio, row.route).toBeGreaterThan(0);
    // the JWT route does more work than the plain route, whatever the machine's load
    expect(report.rows[1].instructions!.perRequest).toBeGreaterThan(report.rows[0].instructions!.perRequest);
    expect(benchProcesses()).toEqual([]);
  }, 240_000);
});
