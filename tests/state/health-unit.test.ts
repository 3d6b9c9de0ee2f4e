// The state plane without nginx: its refusals and warnings (GW260–GW268) positioned at the
// key that causes them, what a valid config compiles to, and njs/lib/health.ts's pure parts
// checked against src/routing/ketama.ts (the placement `gatewayctl route` explains): the
// steer pick must put every key where nginx's ring would with the same servers skipped.
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { buildRing, CRC_TABLE, crc32 as ketamaCrc, place } from '../../src/routing/ketama.ts';
import { crc32, findPoint, indexIn, probeVerdict, ringPick, pointAt, ringPickWith, serverPoints, sortedPoints, upstreamTries, weightedPick, type HealthCheckConf } from '../../njs/lib/peers.ts';

const BASE = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  api:
    servers: [127.0.0.1:9001, 127.0.0.1:9002]
    health_check: { path: /healthz, interval: 5s, timeout: 1s }
    circuit_breaker: { failures: 3 }
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: api
`;

const run = (text: string) => compile('gateway.yaml', { text, env: {} });
const lines = (text: string) => run(text).diagnostics.map(formatDiagnostic);

describe('health rules', () => {
  it('a valid config: servers lose max_fails, njs 0.8.1 is required, no diagnostics', () => {
    const r = run(BASE);
    expect(r.diagnostics).toEqual([]);
    expect(r.files!['conf.d/30-upstreams.conf']).toContain('server 127.0.0.1:9001 max_fails=0 fail_timeout=10s;');
    expect(r.files!['conf.d/35-health-peers.conf']).toContain('upstream gw_peer_api_1 {');
    expect(JSON.parse(r.files!['manifest.json']).requires.njs).toBe('0.8.1');
    const servers = r.files!['conf.d/40-servers.conf'];
    expect(servers).toContain('if (-f $document_root/steer-api) {');
    expect(servers).toContain('js_periodic gateway.healthPeriodic interval=5000ms;');
    expect(servers).toContain('location = "/admin/status" {');
  });

  it('GW260 a timeout not below the interval, an interval below 1s', () => {
    expect(lines(BASE.replace('timeout: 1s', 'timeout: 5s'))).toContain(
      'gateway.yaml:8:60 error GW260 upstreams.api.health_check.timeout: timeout 5000ms must be shorter than the interval 5000ms (a probe round ends before the next one starts)',
    );
    expect(lines(BASE.replace('interval: 5s, timeout: 1s', 'interval: 500ms, timeout: 100ms'))).toContain(
      'gateway.yaml:8:47 error GW260 upstreams.api.health_check.interval: interval 500ms: probes run at most once a second',
    );
  });

  it('GW261 a server given by name', () => {
    expect(lines(BASE.replace('127.0.0.1:9002', 'backend.internal:80'))).toContain(
      'gateway.yaml:7:31 error GW261 upstreams.api.servers[1]: backend.internal:80: health checks and circuit breakers need an IP address and port (probes connect to it, and nginx reports tries by address); resolve the name or drop health_check',
    );
  });

  it('GW262 breaker thresholds: client errors as failures, more trials than failures, sub-second times', () => {
    const got = lines(BASE.replace('circuit_breaker: { failures: 3 }', 'circuit_breaker: { failures: 2, half_open_requests: 3, on: [404, 502], window: 500ms }'));
    expect(got).toContain('gateway.yaml:9:64 error GW262 upstreams.api.circuit_breaker.on: 404: only 5xx (and 429) answers can count as failures; a client error says nothing about the server');
    expect(got).toContain(
      'gateway.yaml:9:57 error GW262 upstreams.api.circuit_breaker.half_open_requests: half_open_requests 3 exceeds failures 2: a half-open server would take more trials than it took failures to open',
    );
    expect(got).toContain('gateway.yaml:9:84 error GW262 upstreams.api.circuit_breaker.window: window must be at least 1s');
  });

  it('GW263 max_fails on a single-server upstream without a breaker never trips', () => {
    const t = BASE.replace('    servers: [127.0.0.1:9001, 127.0.0.1:9002]\n    health_check: { path: /healthz, interval: 5s, timeout: 1s }\n    circuit_breaker: { failures: 3 }\n', '    servers: [127.0.0.1:9001]\n    max_fails: 3\n');
    expect(lines(t)).toContain(
      'gateway.yaml:8:5 warning GW263 upstreams.api.max_fails: upstream api has a single server: nginx never marks it failed, so max_fails never trips; add circuit_breaker: to answer 503 at once while it fails',
    );
  });

  it('GW264 max_fails / fail_timeout beside the state plane are ignored', () => {
    expect(lines(BASE.replace('    circuit_breaker: { failures: 3 }\n', '    circuit_breaker: { failures: 3 }\n    fail_timeout: 30s\n'))).toContain(
      'gateway.yaml:10:5 warning GW264 upstreams.api.fail_timeout: ignored: upstream api has health_check, which decides when a server is out (servers are rendered with max_fails=0)',
    );
  });

  it('GW265 without the status listener', () => {
    expect(lines(BASE.replace('version: 1\n', 'version: 1\nglobal:\n  status: false\n'))).toContain(
      'gateway.yaml:9:5 error GW265 upstreams.api: health checks and circuit breakers run on the status listener (probes, /admin/status); global.status must not be false',
    );
  });

  it('GW266 expect_models names a model the catalogue sends elsewhere', () => {
    const t = `${BASE.replace('timeout: 1s }', 'timeout: 1s, expect_models: [gpt-x] }')}models:\n  - { id: gpt-y, upstream: api }\n`;
    expect(lines(t)).toContain('gateway.yaml:8:79 warning GW266 upstreams.api.health_check.expect_models: model gpt-x is not served by upstream api in the models catalogue');
  });

  it('GW267 cluster_status on an unknown listener or a route\'s path; GW268 without any state', () => {
    expect(lines(`${BASE}cluster_status: { listener: admin }\n`)).toContain('gateway.yaml:14:29 error GW267 cluster_status.listener: unknown listener "admin" (defined: public)');
    expect(lines(`${BASE}cluster_status: { listener: public, path: /a }\n`.replace('prefix: /a/', 'exact: /a'))).toContain(
      'gateway.yaml:14:43 error GW267 cluster_status.path: /a is already a route on listener public (routes[0])',
    );
    const plain = BASE.replace('    health_check: { path: /healthz, interval: 5s, timeout: 1s }\n    circuit_breaker: { failures: 3 }\n', '');
    expect(lines(`${plain}cluster_status: { listener: public }\n`)).toContain('gateway.yaml:12:1 error GW268 cluster_status: no upstream has health_check or circuit_breaker: there is no state to report');
  });

});

describe('admin_api', () => {
  it('GW269 without the status listener; only the token\'s hash is kept', () => {
    const t = `${BASE.replace('version: 1\n', 'version: 1\nglobal:\n  status: false\n')}admin_api:\n  token: Tk9-secret-token-for-tests-7q2z\n`;
    expect(lines(t)).toContain('gateway.yaml:16:1 error GW269 admin_api: the admin API is served on the status listener; global.status must not be false');
    const r = run(`${BASE}admin_api:\n  token: Tk9-secret-token-for-tests-7q2z\n`);
    expect(r.diagnostics).toEqual([]);
    for (const text of Object.values(r.files!)) expect(text).not.toContain('Tk9-secret-token-for-tests-7q2z');
    expect(JSON.stringify(r.model)).not.toContain('Tk9-secret-token-for-tests-7q2z');
    expect(r.files!['conf.d/40-servers.conf']).toContain('location /admin/upstreams/ {');
    // allow: callers besides loopback (the pod network, for gatewayctl --dns on Kubernetes)
    const wide = run(`${BASE}admin_api:\n  token: Tk9-secret-token-for-tests-7q2z\n  allow: [10.0.0.0/8]\n`);
    expect(wide.diagnostics).toEqual([]);
    expect(wide.files!['conf.d/40-servers.conf']).toMatch(/location \/admin\/upstreams\/ \{[^}]*allow ::1;\s*allow 10\.0\.0\.0\/8;\s*deny all;/);
  });

  it('GW269 with nothing to manage; GW570 when several replicas serve the config (runtime changes are per instance)', () => {
    const plain = BASE.replace('    health_check: { path: /healthz, interval: 5s, timeout: 1s }\n    circuit_breaker: { failures: 3 }\n', '');
    expect(lines(`${plain}admin_api:\n  token: Tk9-secret-token-for-tests-7q2z\n`)).toContain(
      'gateway.yaml:12:1 error GW269 admin_api: no upstream has health_check or circuit_breaker and no route takes API keys: the admin API would have nothing to manage',
    );
    const fleet = lines(`${BASE}fleet: { replicas: 3 }\nadmin_api:\n  token: Tk9-secret-token-for-tests-7q2z\n`);
    expect(fleet.find((l) => l.includes('GW570'))).toMatch(/^gateway\.yaml:15:1 warning GW570 admin_api: fleet\.replicas is 3: runtime servers and keys live in each instance; apply them to every replica/);
    expect(lines(`${BASE}admin_api:\n  token: Tk9-secret-token-for-tests-7q2z\n`).join('\n')).not.toContain('GW570');
  });
});

describe('njs pure parts agree with src/routing/ketama.ts', () => {
  const table = Array.from(CRC_TABLE);
  const servers = [
    { address: '10.0.0.1:8000', weight: 1 },
    { address: '10.0.0.2:8000', weight: 2 },
    { address: '10.0.0.3:8000', weight: 1 },
    { address: '10.0.0.4:8000', weight: 1, down: true },
  ];
  const ring = buildRing(servers);
  const hashes = ring.points.map((p) => p.hash);
  const owners = ring.points.map((p) => p.server);

  it('crc32 and findPoint', () => {
    for (const k of ['', 'alice', 'user-42', 'ünïcödé', 'x'.repeat(300)]) {
      expect(crc32(table, Buffer.from(k))).toBe(ketamaCrc(k));
      const h = ketamaCrc(k);
      expect(findPoint(hashes, h)).toBe(place(ring, k).start);
    }
  });

  it('ringPick = place() for every set of unavailable servers', () => {
    for (const unavailable of [[], [0], [1], [0, 2], [0, 1, 2]]) {
      const u = new Set(unavailable);
      for (let n = 0; n < 500; n++) {
        const key = `key-${n}`;
        const want = place(ring, key, u);
        const got = ringPick(hashes, owners, servers.length, ketamaCrc(key), (i) => !servers[i].down && !u.has(i));
        expect(got, `${key} without ${unavailable}`).toBe(want.server ?? -1);
      }
    }
  });

  it('serverPoints + ringPickWith: the build-time ring with runtime servers added = buildRing of the whole set', () => {
    const sets: { address: string; weight: number }[][][] = [
      // [configured servers, runtime servers listed after them]
      [servers, [{ address: '10.0.0.9:8000', weight: 1 }]],
      [servers, [{ address: '10.0.0.9:8000', weight: 3 }, { address: '10.1.2.3:80', weight: 1 }]],
      [[{ address: '127.0.0.1:9001', weight: 1 }], [{ address: '127.0.0.1:9002', weight: 2 }]],
      [[{ address: '192.168.1.10:8080', weight: 5 }, { address: '192.168.1.11:8080', weight: 1 }], [{ address: '[::1]:9000', weight: 1 }, { address: 'unix:/tmp/x.sock', weight: 2 }]],
    ];
    for (const [conf, extra] of sets) {
      const base = buildRing(conf);
      const hashes = base.points.map((p) => p.hash);
      const owners = base.points.map((p) => p.server);
      // each server's own points, as buildRing makes them
      for (const s of [...conf, ...extra]) {
        expect(serverPoints(table, s.address, s.weight).length).toBe(s.weight * 160);
        const list = sortedPoints(serverPoints(table, s.address, s.weight));
        expect(Array.from({ length: list.length / 8 }, (_, k) => pointAt(list, k))).toEqual(buildRing([s]).points.map((p) => p.hash));
      }
      const pts = extra.map((s) => sortedPoints(serverPoints(table, s.address, s.weight)));
      const who = extra.map((_, k) => conf.length + k);
      const n = conf.length + extra.length;
      const pick = (h: number, usable: (i: number) => boolean) => ringPickWith(hashes, owners, pts, who, n, h, usable);
      const want = buildRing([...conf, ...extra]);
      // the same ring: every point of buildRing's is the first at its hash, and none lies between two
      for (let k = 0; k < want.points.length; k++) {
        const p = want.points[k];
        expect(pick(p.hash, () => true), `point ${k}`).toBe(p.server);
        const prev = k === 0 ? want.points[want.points.length - 1].hash + 1 - 0x100000000 : want.points[k - 1].hash + 1;
        if (prev >= 0) expect(pick(prev, () => true), `after point ${k - 1}`).toBe(p.server);
      }
      expect(pick(want.points[want.points.length - 1].hash + 1, () => true)).toBe(want.points[0].server); // wraps
      // keys land where place() puts them on the whole set, with any servers unavailable
      const down = new Set([...conf, ...extra].flatMap((s, i) => ((s as { down?: boolean }).down ? [i] : [])));
      for (const unavailable of [[], [0], [n - 1], [0, n - 1], [...Array(n).keys()]]) {
        const u = new Set(unavailable);
        for (let m = 0; m < 300; m++) {
          const key = `k-${m}`;
          expect(pick(ketamaCrc(key), (i) => !down.has(i) && !u.has(i)), `${key} without ${unavailable}`).toBe(place(want, key, u).server ?? -1);
        }
      }
    }
  });

  it('weightedPick follows the weights among usable servers', () => {
    const counts = [0, 0, 0];
    for (let n = 0; n < 400; n++) counts[weightedPick([1, 2, 1], n, (i) => i !== 2)]++;
    expect(counts).toEqual([134, 266, 0]);
    expect(weightedPick([1, 1], 5, () => false)).toBe(-1);
  });

  it('upstreamTries splits nginx lists of tries and internal redirects', () => {
    expect(upstreamTries('127.0.0.1:1, 127.0.0.1:2 : 127.0.0.1:3', '502, 200 : 504')).toEqual([
      { addr: '127.0.0.1:1', status: 502 },
      { addr: '127.0.0.1:2', status: 200 },
      { addr: '127.0.0.1:3', status: 504 },
    ]);
    expect(upstreamTries('', '')).toEqual([]);
  });

  it('probeVerdict: status, body text, listed models', () => {
    const h: HealthCheckConf = { path: '/v1/models', intervalMs: 1000, timeoutMs: 500, expectStatus: [200], expectBody: null, expectModels: ['m1'], rise: 1, fall: 1 };
    expect(probeVerdict(h, 200, JSON.stringify({ data: [{ id: 'm0' }, { id: 'm1' }] }))).toBe(0);
    expect(probeVerdict(h, 200, JSON.stringify({ data: [{ id: 'm0' }] }))).toBe(4);
    expect(probeVerdict(h, 200, 'not json')).toBe(4);
    expect(probeVerdict(h, 503, '')).toBe(2);
    expect(probeVerdict({ ...h, expectModels: [], expectBody: 'ok' }, 200, 'all ok')).toBe(0);
    expect(probeVerdict({ ...h, expectModels: [], expectBody: 'ok' }, 200, 'nope')).toBe(3);
    expect(indexIn([1, 2], 2)).toBe(1);
  });
});
