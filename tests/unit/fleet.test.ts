// fleet.limits: what a limit zone's allowance means across replicas — the numbers each
// instance enforces (divided: ÷ the most instances that may run, rounded down) and the
// refusals and warnings (GW540–GW543), each at the key that causes it.
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';

const BASE = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  api:
    servers: [127.0.0.1:9001]
limits:
  rate:
    per_ip: { rate: 10r/s, burst: 20 }
    slow: { rate: 5r/m }
  conn:
    streams: { max: 10 }
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: api
    rate_limits: [per_ip, slow]
    conn_limits: [streams]
`;

const run = (text: string) => compile('gateway.yaml', { text, env: {} });
const lines = (text: string) => run(text).diagnostics.map(formatDiagnostic);

describe('fleet.limits', () => {
  it('per_instance (the default) renders the allowance unchanged, and warns (GW540) when replicas > 1', () => {
    const one = run(BASE);
    expect(one.files!['conf.d/10-limits.conf']).toContain('rate=10r/s;');
    const three = run(`${BASE}fleet: { replicas: 3 }\n`);
    expect(three.ok).toBe(true);
    const body = (t: string) => t.split('\n').filter((l) => !l.startsWith('# Generated')).join('\n');
    expect(body(three.files!['conf.d/10-limits.conf'])).toBe(body(one.files!['conf.d/10-limits.conf']));
    expect(three.diagnostics.map(formatDiagnostic)).toContain(
      'gateway.yaml:20:10 warning GW540 fleet.replicas: limits are per instance: with up to 3 instances a client spread over them may get up to 3× the allowance of per_ip, slow, streams; set fleet.limits to divided or affinity to bound it',
    );
    expect(lines(`${BASE}fleet: { replicas: 1 }\n`)).toEqual([]);
  });

  it('divided: rate, burst and max ÷ replicas, rounded down, in the unit nginx keeps exact', () => {
    const r = run(`${BASE}fleet: { replicas: 3, limits: divided }\n`);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
    const conf = r.files!['conf.d/10-limits.conf'];
    // 10r/s = 600r/m ÷ 3 = 200r/m; burst 20 ÷ 3 = 6; 5r/m ÷ 3 = 1r/m; max 10 ÷ 3 = 3
    expect(conf).toContain('limit_req_zone $binary_remote_addr zone=gw_rl_per_ip:10m rate=200r/m;');
    expect(conf).toContain('zone=gw_rl_slow:10m rate=1r/m;');
    expect(conf).toContain('#   per_ip: 10r/s burst 20 -> 200r/m burst 6 per instance');
    expect(conf).toContain('#   streams: max 10 -> 3 per instance');
    const servers = r.files!['conf.d/40-servers.conf'];
    expect(servers).toContain('limit_req zone=gw_rl_per_ip burst=6 nodelay;');
    expect(servers).toContain('limit_conn gw_conn_streams 3;');
    // a whole number per second stays in r/s
    const two = run(`${BASE.replace('5r/m', '6r/m').replace('max: 10', 'max: 2')}fleet: { replicas: 2, limits: divided }\n`);
    expect(two.files!['conf.d/10-limits.conf']).toContain('rate=5r/s;');
  });

  it('affinity renders the whole allowance on every instance (the front tier pins each client)', () => {
    const r = run(`${BASE}fleet: { replicas: 3, limits: affinity }\n`);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
    expect(r.files!['conf.d/10-limits.conf']).toContain('rate=10r/s;');
  });

  it('GW541 a rate that divides to less than 1r/m, GW542 a max below the replica count', () => {
    const got = lines(`${BASE}fleet: { replicas: 12, limits: divided }\n`);
    expect(got).toContain(
      'gateway.yaml:11:19 error GW541 limits.rate.slow.rate: rate 5r/m cannot be divided over 12 instances (fleet.limits: divided): each would get less than 1r/m; raise the rate or use affinity',
    );
    expect(got).toContain(
      'gateway.yaml:13:21 error GW542 limits.conn.streams.max: max 10 cannot be divided over 12 instances (fleet.limits: divided): each would allow less than 1 connection; raise max or use affinity',
    );
  });

  it('GW544 an autoscaler without a CPU request', () => {
    expect(lines(`${BASE}kubernetes:\n  resources: { limits: { memory: 256Mi } }\n  autoscaling: { max_replicas: 3 }\n`)).toContain(
      'gateway.yaml:22:3 error GW544 kubernetes.autoscaling: the autoscaler scales on CPU utilization of the requests: set kubernetes.resources.requests.cpu',
    );
    expect(lines(`${BASE}kubernetes:\n  autoscaling: { max_replicas: 3 }\n`)).toEqual([]);
  });

  it('GW543 divided with an autoscaler divides by max_replicas; GW549 max_replicas below replicas', () => {
    const r = run(`${BASE}fleet: { replicas: 2, limits: divided }\nkubernetes:\n  autoscaling: { max_replicas: 5 }\n`);
    expect(r.diagnostics.map(formatDiagnostic)).toContain(
      "gateway.yaml:22:3 warning GW543 kubernetes.autoscaling: fleet.limits: divided divides by max_replicas 5, so the fleet never exceeds an allowance; while fewer pods run, a client gets as little as 2/5 of it",
    );
    expect(r.files!['conf.d/10-limits.conf']).toContain('zone=gw_rl_per_ip:10m rate=2r/s;'); // 600r/m ÷ 5 = 120r/m
    expect(lines(`${BASE.replace('    rate_limits: [per_ip, slow]\n    conn_limits: [streams]\n', '')}fleet: { replicas: 4 }\nkubernetes:\n  autoscaling: { max_replicas: 3 }\n`)).toContain(
      "gateway.yaml:20:18 error GW549 kubernetes.autoscaling.max_replicas: max_replicas 3 is below fleet.replicas 4 (the autoscaler's minimum)",
    );
  });
});
