// Token budgets and r/h, r/d windows (src/features/limits/tokens.ts): the refusals GW440–GW446,
// each at the key that causes it, and what a valid config compiles to (the body step carries the
// specs; no njs call of their own on a model route).
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { semanticDiff } from '../../src/diff/semantic.ts';
import { FEATURES } from '../../src/features/index.ts';

const BASE = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  llm:
    servers: [127.0.0.1:9001]
models:
  - { id: gpt-4o, upstream: llm }
limits:
  tokens:
    budget: { key: model, window: hour, tokens: 1000 }
  rate:
    hourly: { key: client_ip, rate: 100r/h }
routes:
  - name: chat
    match: { exact: /v1/chat/completions }
    models: route
    token_limits: [budget]
    rate_limits: [hourly]
`;

const run = (text: string) => compile('gateway.yaml', { text, env: {} });
const lines = (text: string) => run(text).diagnostics.map(formatDiagnostic);
const plain = `  - name: api
    match: { prefix: /api/ }
    upstream: llm
`;

describe('token budget rules', () => {
  it('a valid config has no diagnostics', () => {
    expect(lines(BASE)).toEqual([]);
  });

  it('GW440 an unknown budget', () => {
    expect(lines(BASE.replace('token_limits: [budget]', 'token_limits: [nope]'))).toContain(
      'gateway.yaml:19:20 error GW440 routes[0].token_limits[0]: unknown token budget "nope" (defined: budget)',
    );
  });

  it('GW441 a budget on a route whose body the gateway does not read', () => {
    expect(lines(`${BASE}${plain}    token_limits: [budget]\n`)).toContain(
      'gateway.yaml:24:19 error GW441 routes[1].token_limits: token budgets need the request body (max_tokens, the prompt): only routes with models: route or a body hash key read it',
    );
  });

  it('GW442 an r/h window on a route without a body step', () => {
    expect(lines(`${BASE}${plain}    rate_limits: [hourly]\n`).some((l) => l.startsWith('gateway.yaml:24:18 error GW442 routes[1].rate_limits: zone hourly (100r/h) is counted by the body step'))).toBe(true);
  });

  it('GW443 a budget named like a rate zone', () => {
    expect(lines(BASE.replace('budget: {', 'hourly: {').replace('[budget]', '[hourly]'))).toContain(
      'gateway.yaml:12:5 error GW443 limits.tokens.hourly: zone name "hourly" is also a rate limit zone; token budgets need names of their own',
    );
  });

  it('GW444 a client_id key without authentication', () => {
    expect(lines(BASE.replace('key: model', 'key: client_id'))).toContain(
      'gateway.yaml:12:20 error GW444 limits.tokens.budget.key: key client_id needs the authenticated client, but there is no auth: block',
    );
  });

  it('GW445 an allowance that cannot be divided over the fleet', () => {
    const got = lines(`${BASE.replace('tokens: 1000', 'tokens: 2')}fleet: { replicas: 3, limits: divided }\n`);
    expect(got).toContain('gateway.yaml:12:49 error GW445 limits.tokens.budget.tokens: tokens 2 cannot be divided over 3 instances (fleet.limits: divided)');
  });

  it('GW446 a window keyed by a header', () => {
    expect(lines(BASE.replace('key: client_ip, rate: 100r/h', 'key: { header: X-Tenant }, rate: 100r/h'))).toContain(
      'gateway.yaml:14:20 error GW446 limits.rate.hourly.key: r/h and r/d windows are counted by client_ip or client_id, not by a header',
    );
  });
});

describe('token budget output', () => {
  it('the body step carries the specs; the model route still makes one njs call of its own', () => {
    const r = run(BASE);
    expect(r.diagnostics).toEqual([]);
    const servers = r.files!['conf.d/40-servers.conf'];
    expect(servers).toContain('set $gw_budgets "hourly:client_ip:3600:100|budget:model:3600:1000:1024:refuse:16";');
    expect(servers).toContain('proxy_set_body $gw_body_out;');
    expect(servers).toContain('error_page 461 = @gw_route_chat_429_tokens;');
    expect(servers).toContain('js_body_filter gateway.llmBody buffer_type=buffer;');
    // no nginx zone for an r/h window
    expect(r.files!['conf.d/10-limits.conf']).not.toContain('gw_rl_hourly');
    // body step (routing) + the shared log-phase call and body filter (metrics feature, off here)
    expect(servers).toContain('# route chat (routes[0]); njs calls per request: at most 3 (routing 1, metrics 2)');
    expect(r.files!['nginx.conf']).toContain('access_log "/dev/null" combined if=$gw_metrics;');
  });

  it('fleet.limits divided divides the allowances', () => {
    const r = run(`${BASE}fleet: { replicas: 4, limits: divided }\n`);
    const servers = r.files!['conf.d/40-servers.conf'];
    expect(servers).toContain('set $gw_budgets "hourly:client_ip:3600:25|budget:model:3600:250:1024:refuse:16";');
  });
});

describe('token budget diff', () => {
  const changes = (a: string, b: string) => semanticDiff(run(a).model!, run(b).model!, FEATURES).map((c) => [c.text, c.risk ?? null]);

  it('flags a loosened budget or window and a removed one, not a tightened one', () => {
    expect(changes(BASE, BASE.replace('tokens: 1000', 'tokens: 5000'))).toContainEqual(['token budget budget: 1000 tokens a hour by model → 5000 tokens a hour by model (loosened)', 'rate-limit-loosened']);
    expect(changes(BASE, BASE.replace('tokens: 1000', 'tokens: 10'))).toContainEqual(['token budget budget: 1000 tokens a hour by model → 10 tokens a hour by model', null]);
    expect(changes(BASE, BASE.replace('100r/h', '100r/d'))).toContainEqual(['request window hourly: 100 requests a hour by client_ip → 100 requests a day by client_ip', null]);
    expect(changes(BASE, BASE.replace('100r/h', '1000r/h'))).toContainEqual(['request window hourly: 100 requests a hour by client_ip → 1000 requests a hour by client_ip (loosened)', 'rate-limit-loosened']);
    const removed = BASE.replace('  tokens:\n    budget: { key: model, window: hour, tokens: 1000 }\n', '').replace('    token_limits: [budget]\n', '');
    expect(changes(BASE, removed)).toContainEqual(['token budget budget removed (was 1000 tokens a hour by model)', 'rate-limit-loosened']);
  });
});
