// The metrics feature's refusals (GW520–GW524), each positioned at the key that causes it,
// and what a valid `metrics:` block compiles to (defaults, the one njs call per route).
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { DEFAULT_BUCKETS } from '../../src/features/metrics/index.ts';

const BASE = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  api:
    servers: [127.0.0.1:9001]
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: api
`;

const run = (text: string) => compile('gateway.yaml', { text, env: {} });
const lines = (text: string) => run(text).diagnostics.map(formatDiagnostic);

describe('metrics rules', () => {
  it('GW520 an unknown listener', () => {
    expect(lines(`${BASE}metrics: { listener: admin }\n`)).toContain(
      'gateway.yaml:12:12 error GW520 metrics.listener: unknown listener "admin" (defined: status, public)',
    );
  });

  it('GW521 the status listener is off', () => {
    const got = lines(BASE.replace('listeners:', 'global:\n  status: false\nlisteners:') + 'metrics:\n  path: /m\n');
    expect(got.some((l) => /^gateway\.yaml:14:1 error GW521 metrics\.listener: metrics are served on the status listener, but global\.status is false/.test(l)), got.join('\n')).toBe(true);
  });

  it('GW522 buckets that do not increase', () => {
    expect(lines(`${BASE}metrics:\n  buckets: [0.1, 1, 1, 5]\n`)).toContain(
      'gateway.yaml:13:21 error GW522 metrics.buckets[2]: histogram buckets must be strictly increasing (1 after 1)',
    );
  });

  it('GW523 a path the listener already serves', () => {
    expect(lines(`${BASE}metrics: { path: /nginx_status }\n`)).toContain(
      'gateway.yaml:12:12 error GW523 metrics.path: /nginx_status is already served on that listener (global.status.path)',
    );
    const onPublic = BASE.replace("    match: { prefix: /a/ }", '    match: { exact: /metrics }') + 'metrics: { listener: public }\n';
    expect(lines(onPublic).some((l) => l.includes('GW523 metrics.path: /metrics is already served on that listener (routes[0].match.exact)'))).toBe(true);
  });

  it('GW524 a dict too small for the series budget', () => {
    const got = lines(`${BASE}metrics:\n  dict_size: 64k\n  max_series: 1000\n`);
    expect(got.some((l) => /^gateway\.yaml:13:3 error GW524 metrics\.dict_size: dict_size 64k cannot hold the 36 series of the routes' histograms plus max_series 1000/.test(l)), got.join('\n')).toBe(true);
    // the default budget fits the default dict
    expect(lines(`${BASE}metrics: {}\n`)).toEqual([]);
  });

  it('GW243 a dict size nginx refuses (in g, or over 1024m); one too small for the series stays GW524', () => {
    expect(lines(`${BASE}metrics:\n  dict_size: 2g\n`)).toEqual(['gateway.yaml:13:3 error GW243 metrics.dict_size: zone size 2g: nginx takes zone sizes in k or m (1g is 1024m)']);
    expect(lines(`${BASE}metrics:\n  dict_size: 2000m\n`)).toEqual(['gateway.yaml:13:3 error GW243 metrics.dict_size: zone size 2000m is out of range: 64k to 1024m']);
    expect(lines(`${BASE}metrics:\n  dict_size: 1024m\n`)).toEqual([]);
    expect(lines(`${BASE}metrics:\n  dict_size: 1k\n`).map((l) => l.split(' ')[2])).toEqual(['GW524']);
  });

  it('GW524 sizes the histograms of counted routes only: an excluded route takes no room', () => {
    // 40 routes of 32 series each (1,280 + 4) and max_series 100 need 346k; with 30 of them
    // excluded, 10 routes (324) and the budget need 106k, which 128k holds
    const routes = Array.from({ length: 40 }, (_, i) => `  - { name: r${i}, match: { prefix: /r${i}/ }, upstream: api }\n`).join('');
    const many = BASE.replace(/routes:\n[\s\S]*$/, `routes:\n${routes}`);
    const excluded = Array.from({ length: 30 }, (_, i) => `r${i}`).join(', ');
    const all = lines(`${many}metrics:\n  dict_size: 128k\n  max_series: 100\n`);
    expect(all.some((l) => /error GW524 metrics\.dict_size: dict_size 128k cannot hold the 1284 series/.test(l)), all.join('\n')).toBe(true);
    expect(lines(`${many}metrics:\n  dict_size: 128k\n  max_series: 100\n  exclude_routes: [${excluded}]\n`)).toEqual([]);
    const tooSmall = lines(`${many}metrics:\n  dict_size: 64k\n  max_series: 100\n  exclude_routes: [${excluded}]\n`);
    expect(tooSmall.some((l) => /error GW524 metrics\.dict_size: dict_size 64k cannot hold the 324 series/.test(l)), tooSmall.join('\n')).toBe(true);
  });
});

describe('metrics output', () => {
  it('metrics: {} serves /metrics on the status listener with the default buckets, and counts a plain route from the counting log (no njs call)', () => {
    const r = run(`${BASE}metrics: {}\n`);
    expect(r.diagnostics).toEqual([]);
    const servers = r.files!['conf.d/40-servers.conf'];
    const status = servers.slice(servers.indexOf('internal status listener'));
    expect(status).toContain('location = "/metrics" {');
    expect(status).toContain('js_content gateway.metricsExport;');
    expect(servers).toContain('# route a (routes[0])\n');
    expect(servers).not.toMatch(/# route a \(routes\[0\]\); njs calls/);
    expect(JSON.parse(r.files!['manifest.json']).routes[0].njsCalls).toBe(0);
    expect(JSON.parse(r.files!['njs/metrics.json']).buckets).toEqual(DEFAULT_BUCKETS);
    expect(JSON.parse(r.files!['njs/metrics.json']).spool).toBe('temp/metrics/');
    // js_periodic counts the counting log: njs 0.8.1 at least
    expect(JSON.parse(r.files!['manifest.json']).requires.njs).toBe('0.8.1');
    expect(DEFAULT_BUCKETS[0]).toBe(0.005);
    expect(DEFAULT_BUCKETS[DEFAULT_BUCKETS.length - 1]).toBe(60);
    // the counting log: one file per worker, under an empty document root nginx creates
    const main = r.files!['nginx.conf'];
    expect(main).toContain('access_log "temp/metrics/count.$pid.log" gw_metrics_count if=$gw_metrics_count;');
    expect(main).toContain('root "temp/empty";');
    expect(main).toContain('open_log_file_cache max=8 inactive=60s valid=60s min_uses=1;');
    expect(main).toContain('log_format gw_metrics_count "r|$gw_metrics_route|$gw_metrics_method|$status|$gw_metrics_upstream;$request_time;$upstream_response_time;$request_length;$bytes_sent;$status;$gw_metrics_route_kind;$upstream_cache_status;$limit_req_status;$limit_conn_status;;$upstream_status;$upstream_addr";');
    // no route needs the log-phase call: there is none
    expect(main).not.toContain('/dev/null');
    expect(r.files!['conf.d/00-maps.conf']).not.toContain('js_set $gw_metrics ');
    expect(status).toMatch(/location @gw_metrics_spool \{\n\s+scgi_temp_path "temp\/metrics";\n\s+client_body_temp_path "temp\/empty";\n\s+js_periodic gateway.metricsDrain interval=250ms worker_affinity=all;\n\s+\}/);
  });

  it('access_log: false keeps the metrics log (no `access_log off` beside it)', () => {
    const r = run(BASE.replace('listeners:', 'global:\n  access_log: false\nlisteners:') + 'metrics: {}\n');
    expect(r.files!['nginx.conf']).not.toContain('access_log off;');
    expect(r.files!['nginx.conf']).toContain('if=$gw_metrics_count;');
    // without metrics the main log is still switched off
    expect(run(BASE.replace('listeners:', 'global:\n  access_log: false\nlisteners:')).files!['nginx.conf']).toContain('access_log off;');
  });

  it('enabled: false builds nothing of it', () => {
    const r = run(`${BASE}metrics: { enabled: false }\n`);
    expect(r.files!['njs/metrics.json']).toBeUndefined();
    expect(r.files!['conf.d/40-servers.conf']).not.toContain('/metrics');
  });
});

const LLM = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  llm:
    servers: [127.0.0.1:9001]
models:
  - { id: gpt-4o, upstream: llm }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
  - name: emb
    match: { prefix: /openai/v1/embeddings }
    upstream: llm
  - name: other
    match: { prefix: /other/ }
    upstream: llm
  - name: hello
    match: { exact: /hello }
    respond: { status: 200, body: hi }
`;

describe('metrics: LLM routes', () => {
  it('GW525 an unknown route in metrics.llm.routes', () => {
    expect(lines(`${LLM}metrics:\n  llm:\n    routes: [chat, nope]\n`)).toContain('gateway.yaml:25:20 error GW525 metrics.llm.routes[1]: unknown route "nope"');
  });

  it('GW526 a route the gateway answers itself', () => {
    expect(lines(`${LLM}metrics:\n  llm:\n    routes: [hello]\n`)).toContain(
      'gateway.yaml:25:14 error GW526 metrics.llm.routes[0]: route "hello" does not proxy (it is answered by the gateway), so it has no LLM responses to account',
    );
  });

  it('GW527 tokens by client without auth', () => {
    expect(lines(`${LLM}metrics:\n  llm:\n    client_label: true\n`)).toContain(
      'gateway.yaml:25:5 error GW527 metrics.llm.client_label: tokens by client need an authenticated client id, but there is no auth: block',
    );
  });

  it('model routes and OpenAI endpoint paths are LLM routes: body filter, uncompressed upstream bodies, log fields', () => {
    const r = run(`${LLM}global:\n  access_log: { format: json }\nmetrics:\n  llm: { routes: [other] }\n`);
    expect(r.diagnostics).toEqual([]);
    const conf = JSON.parse(r.files!['njs/metrics.json']) as { routes: Record<string, { llm: number }> };
    expect(Object.fromEntries(Object.entries(conf.routes).map(([k, v]) => [k, v.llm]))).toEqual({ chat: 1, emb: 1, other: 1, hello: 0 });
    const servers = r.files!['conf.d/40-servers.conf'];
    expect(servers.match(/js_body_filter gateway\.llmBody buffer_type=buffer;/g)?.length).toBe(3);
    expect(servers.match(/proxy_set_header Accept-Encoding "";/g)?.length).toBe(3);
    expect(servers).toContain('# route emb (routes[1]); njs calls per request: at most 2 (metrics 2)');
    expect(r.files!['nginx.conf']).toContain('"model":"$gw_log_llm_model","input_tokens":$gw_log_llm_input_tokens');
    // llm.enabled: false turns it off
    const off = run(`${LLM}metrics:\n  llm: { enabled: false }\n`);
    expect(off.files!['conf.d/40-servers.conf']).not.toContain('js_body_filter');
    expect(off.files!['conf.d/00-maps.conf']).not.toContain('$gw_llm');
  });
});

describe('metrics: excluded routes', () => {
  const EXCL = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  api:
    servers: [127.0.0.1:9001]
  guarded:
    servers: [127.0.0.1:9002]
    circuit_breaker: { failures: 3 }
models:
  - { id: gpt-4o, upstream: api }
limits:
  tokens:
    per_client: { key: client_ip, window: hour, tokens: 1000 }
routes:
  - name: assets
    match: { prefix: /assets/ }
    upstream: api
  - name: default
    match: { prefix: /d/ }
    upstream: api
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
  - name: budget
    match: { exact: /b/v1/chat/completions, methods: [POST] }
    models: route
    token_limits: [per_client]
  - name: guard
    match: { prefix: /g/ }
    upstream: guarded
`;

  it('GW530 an unknown route, GW531 a route whose other accounting rides in the log-phase call', () => {
    const got = lines(`${EXCL}metrics:\n  exclude_routes: [assets, nope, chat, budget, guard]\n`);
    expect(got).toContain('gateway.yaml:34:28 error GW530 metrics.exclude_routes[1]: unknown route "nope" (defined: assets, default, chat, budget, guard)');
    expect(got).toContain('gateway.yaml:34:34 error GW531 metrics.exclude_routes[2]: route "chat" cannot skip the log-phase call: it is an LLM route (tokens, models and time to first token are counted in that call)');
    expect(got).toContain('gateway.yaml:34:40 error GW531 metrics.exclude_routes[3]: route "budget" cannot skip the log-phase call: it is an LLM route (tokens, models and time to first token are counted in that call)');
    expect(got).toContain('gateway.yaml:34:48 error GW531 metrics.exclude_routes[4]: route "guard" cannot skip the log-phase call: it proxies to upstream "guarded", whose circuit breaker records failed tries in that call');
    expect(got.filter((l) => /GW53[01]/.test(l))).toHaveLength(4); // assets is fine
    // without LLM accounting: the budgets still reconcile there, and a model route may reach any pool
    const noLlm = lines(`${EXCL}metrics:\n  llm: { enabled: false }\n  exclude_routes: [budget, chat]\n`);
    expect(noLlm).toContain('gateway.yaml:35:20 error GW531 metrics.exclude_routes[0]: route "budget" cannot skip the log-phase call: its token budgets are reconciled in that call (the tokens used replace the reservation)');
    expect(noLlm).toContain('gateway.yaml:35:28 error GW531 metrics.exclude_routes[1]: route "chat" cannot skip the log-phase call: it proxies to upstream "guarded", whose circuit breaker records failed tries in that call');
  });

  it('an excluded route has no log-phase call and no series; the others keep theirs', () => {
    const r = run(`${EXCL}metrics:\n  exclude_routes: [assets, default]\n`);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
    const conf = Object.entries(r.files!).filter(([k]) => k.startsWith('conf.d/') || k === 'nginx.conf').map(([, v]) => v).join('\n');
    // neither log counts the excluded routes (a route named like a map keyword escaped); the
    // routes a feature needs the log-phase call on are counted there, not in the counting log
    expect(conf).toMatch(/map \$gw_route \$gw_metrics_count \{\n\s+default "1";\n\s+assets "";\n\s+\\default "";\n\s+chat "";\n\s+budget "";\n\s+guard "";\n\}/);
    expect(conf).toMatch(/map \$gw_route \$gw_metrics_call \{\n\s+default "";\n\s+chat \$gw_metrics;\n\s+budget \$gw_metrics;\n\s+guard \$gw_metrics;\n\}/);
    expect(conf).toContain('access_log "/dev/null" combined if=$gw_metrics_call;');
    expect(conf).toContain('access_log "temp/metrics/count.$pid.log" gw_metrics_count if=$gw_metrics_count;');
    expect(conf).not.toContain('if=$gw_metrics;');
    const manifest = JSON.parse(r.files!['manifest.json']) as { routes: { name: string; njsCalls: number }[] };
    const calls = Object.fromEntries(manifest.routes.map((x) => [x.name, x.njsCalls]));
    expect(calls.assets).toBe(0);
    expect(calls.default).toBe(0);
    expect(calls.guard).toBeGreaterThan(0);
    const pre = JSON.parse(r.files!['njs/metrics.json']) as { routes: Record<string, unknown> };
    expect(Object.keys(pre.routes).sort()).toEqual(['budget', 'chat', 'guard']);
  });

  it('without exclude_routes every route is counted: in the log-phase call where a feature needs it, else from the counting log', () => {
    const r = run(`${EXCL}metrics: {}\n`);
    const conf = Object.values(r.files!).join('\n');
    expect(conf).toMatch(/map \$gw_route \$gw_metrics_count \{\n\s+default "1";\n\s+chat "";\n\s+budget "";\n\s+guard "";\n\}/);
    expect(conf).toContain('access_log "/dev/null" combined if=$gw_metrics_call;');
    const manifest = JSON.parse(r.files!['manifest.json']) as { routes: { name: string; njsCalls: number }[] };
    const calls = Object.fromEntries(manifest.routes.map((x) => [x.name, x.njsCalls]));
    expect(calls.assets).toBe(0);
    expect(calls.default).toBe(0);
    expect(calls.guard).toBe(1);
  });
});
