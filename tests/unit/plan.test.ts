// The typed location plan (src/plan/route.ts): where each slot lands for each declared need,
// and the per-route njs call count the features declare (manifest and location comment).
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { d, type Directive } from '../../src/plan/directive.ts';
import { emptySlots, layoutRoute, ROUTE_SLOTS, type RoutePlan } from '../../src/plan/route.ts';

function plan(over: Omit<Partial<RoutePlan>, 'needs'> & { needs?: Partial<RoutePlan['needs']> } = {}): RoutePlan {
  const slots = emptySlots();
  // one recognisable directive per slot
  for (const s of ROUTE_SLOTS) slots[s].push(d(`slot_${s}`));
  const { needs, ...rest } = over;
  return {
    route: { name: 'r', index: 0 },
    njsCalls: { total: 0, byFeature: {} },
    head: 'location /r/',
    routeName: d('set', '$gw_route', '"r"'),
    slots,
    checks: [{ head: 'if ($x)', lines: [d('return', '404')] }],
    lateChecks: [{ head: 'if ($late)', lines: [d('return', '403')] }],
    content: { kind: 'proxy', proxyPass: d('proxy_pass', 'http://u/'), proxyPassNamed: d('proxy_pass', 'http://u$gw_upstream_uri_r') },
    errorLocations: [{ head: 'location @gw_route_r_429', lines: [d('return', '429')] }],
    needs: { auth: false, authHandover: null, bodyStep: null, eitherMethod: false, ...needs },
    ...rest,
  };
}

const names = (lines: string[]) => lines.map((x) => x.replace(/[ ;].*$/, ''));

describe('layoutRoute', () => {
  it('one location holds every slot in the fixed order, proxy_pass after the client limits', () => {
    const { location, named } = layoutRoute(plan());
    expect(names(location.lines)).toEqual([
      'slot_name', 'slot_access', 'slot_auth', 'slot_limits', 'slot_body', 'slot_routingKey', 'slot_clientLimits',
      'proxy_pass', 'slot_upstream', 'slot_requestHeaders', 'slot_proxyTuning', 'slot_streaming', 'slot_cache',
      'slot_responseHeaders', 'slot_errorPages', 'slot_raw',
    ]);
    expect(location.lines).toContain('proxy_pass http://u/;');
    expect(location.blocks!.map((b) => b.head)).toEqual(['if ($x)']);
    expect(named.map((b) => b.head)).toEqual(['location @gw_route_r_429']);
  });

  it('an auth hand-over keeps checks and limits public and moves client limits and proxying to the named location', () => {
    const { location, named } = layoutRoute(plan({ needs: { auth: true, authHandover: { next: '@gw_route_r_auth' } } }));
    expect(names(location.lines)).toEqual(['slot_name', 'slot_access', 'slot_auth', 'slot_limits', 'slot_body', 'slot_routingKey', 'slot_responseHeaders', 'slot_errorPages', 'try_files']);
    expect(location.lines.at(-1)).toBe('try_files "/.gatewayctl-no-such-file" @gw_route_r_auth;');
    const next = named[0];
    expect(next.head).toBe('location @gw_route_r_auth');
    expect(next.lines[0]).toBe('set $gw_route "r";');
    expect(next.lines).toContain('proxy_pass http://u$gw_upstream_uri_r;'); // no URI part in a named location
    expect(names(next.lines).slice(1, 3)).toEqual(['slot_clientLimits', 'proxy_pass']);
    expect(next.blocks!.map((b) => b.head)).toEqual(['if ($late)']);
  });

  it('either method: an accepted key jumps to the post-auth location before try_files', () => {
    const { location } = layoutRoute(plan({ needs: { auth: true, eitherMethod: true, authHandover: { next: '@n' } } }));
    expect(location.lines.slice(-2)).toEqual(['error_page 418 = @n;', 'try_files "/.gatewayctl-no-such-file" @n;']);
  });

  it('a body step runs the njs handler last in the public location and proxies from its named location', () => {
    const step = { next: '@gw_next_r', lines: [d('client_body_in_single_buffer', 'on')], handler: d('js_content', 'gateway.route') };
    const { location, named } = layoutRoute(plan({ needs: { bodyStep: step } }));
    expect(location.lines.at(-1)).toBe('js_content gateway.route;');
    expect(location.lines).toContain('client_body_in_single_buffer on;');
    expect(named[0].head).toBe('location @gw_next_r');
    expect(named[0].lines).not.toContain('set $gw_route "r";'); // no auth: nothing to restore
  });

  it('either credential with a body step: an accepted key jumps to a twin of the body step, both continue in the proxying location', () => {
    const step = { next: '@gw_next_r', lines: [d('client_body_in_single_buffer', 'on')], handler: d('js_content', 'gateway.route') };
    const { location, named } = layoutRoute(plan({ needs: { auth: true, eitherMethod: true, authHandover: { next: '@gw_route_r_auth' }, bodyStep: step } }));
    // the public location: auth_request (slot_auth), the 418 jump target, the handler last
    expect(location.lines.slice(-2)).toEqual(['error_page 418 = @gw_next_r_key;', 'js_content gateway.route;']);
    expect(location.lines).not.toContain('try_files "/.gatewayctl-no-such-file" @gw_route_r_auth;');
    const [twin, next] = named;
    expect(twin.head).toBe('location @gw_next_r_key');
    // route name, then allow/deny and address-keyed limits again (the jump left before them), the body size, the step
    expect(names(twin.lines)).toEqual(['set', 'slot_access', 'slot_limits', 'slot_body', 'slot_routingKey', 'client_body_in_single_buffer', 'slot_responseHeaders', 'slot_errorPages', 'js_content']);
    expect(twin.lines).not.toContain('slot_auth;'); // no auth_request on the key's way
    expect(next.head).toBe('location @gw_next_r');
    expect(names(next.lines).slice(0, 5)).toEqual(['set', 'slot_access', 'slot_limits', 'slot_clientLimits', 'proxy_pass']);
    expect(next.blocks!.map((b) => b.head)).toEqual(['if ($late)']);
  });

  it('an answer is handed over to after checks and limits; identity-dependent parts go with it', () => {
    const answer: Directive[] = [d('return', '200', '"ok"')];
    const { location, named } = layoutRoute(plan({ content: { kind: 'answer', name: '@gw_route_r_respond', lines: answer }, needs: { auth: true } }));
    expect(names(location.lines)).toEqual(['slot_name', 'slot_access', 'slot_auth', 'slot_limits', 'slot_body', 'slot_errorPages', 'try_files']);
    // `return` answers in the rewrite phase, before limit_req: the client limits get a location
    // of their own (with the route's error pages) that hands over to the answering one
    const [limited, answering] = named.slice(-2);
    expect(limited.head).toBe('location @gw_route_r_respond');
    expect(limited.lines).toEqual(['set $gw_route "r";', 'slot_clientLimits;', 'slot_errorPages;', 'try_files "/.gatewayctl-no-such-file" @gw_route_r_respond_answer;']);
    expect(limited.blocks!.map((b) => b.head)).toEqual(['if ($late)']);
    expect(answering).toEqual({ head: 'location @gw_route_r_respond_answer', lines: ['set $gw_route "r";', 'return 200 "ok";'] });
    // without client limits the answering location is the hand-over's target itself
    const slots = emptySlots();
    const plain = layoutRoute(plan({ slots, content: { kind: 'answer', name: '@gw_route_r_respond', lines: answer }, needs: { auth: true } }));
    expect(plain.named.at(-1)!.lines).toEqual(['set $gw_route "r";', 'return 200 "ok";']);
  });
});

describe('njs calls per route', () => {
  it('the manifest and the location comment count what each feature declares', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-plan-'));
    writeFileSync(path.join(dir, 'keys.yaml'), 'version: 1\nkeys: []\n');
    writeFileSync(path.join(dir, 'secret'), 'a'.repeat(48));
    writeFileSync(
      path.join(dir, 'gateway.yaml'),
      `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  plain:
    servers: [127.0.0.1:9001]
  by_user:
    balance: consistent_hash
    hash_key: { body_field: user }
    servers: [127.0.0.1:9002, 127.0.0.1:9003]
auth:
  api_keys: { file: keys.yaml }
  jwt:
    main: { algorithms: [HS256], secret_file: secret }
routes:
  - name: open
    match: { prefix: /open/ }
    upstream: plain
  - name: keyed
    match: { prefix: /keyed/ }
    upstream: plain
    auth: api_key
  - name: keyed-body-hash
    match: { exact: /v1/chat, methods: [POST] }
    upstream: by_user
    auth: api_key
  - name: either-body-hash
    match: { exact: /v1/either, methods: [POST] }
    upstream: by_user
    auth: { methods: [api_key, jwt] }
`,
    );
    const r = compile(path.join(dir, 'gateway.yaml'), { env: {} });
    expect(r.ok, r.diagnostics.map((x) => x.message).join('\n')).toBe(true);
    const man = JSON.parse(r.files!['manifest.json']);
    expect(man.routes).toEqual([
      { name: 'open', njsCalls: 0, byFeature: {} },
      { name: 'keyed', njsCalls: 1, byFeature: { auth: 1 } },
      { name: 'keyed-body-hash', njsCalls: 2, byFeature: { auth: 1, routing: 1 } },
      // a JWT request: the API-key js_set (no key sent), the auth_request handler, the body step;
      // an API-key request: the js_set and the body step (in the twin location)
      { name: 'either-body-hash', njsCalls: 3, byFeature: { auth: 2, routing: 1 } },
    ]);
    const servers = r.files!['conf.d/40-servers.conf'];
    expect(servers).toContain('# route open (routes[0])\n');
    expect(servers).toContain('# route keyed (routes[1]); njs calls per request: at most 1 (auth 1)\n');
    expect(servers).toContain('# route keyed-body-hash (routes[2]); njs calls per request: at most 2 (auth 1, routing 1)\n');
    const either = servers.slice(servers.indexOf('# route either-body-hash (routes[3]); njs calls per request: at most 3 (auth 2, routing 1)\n'));
    const block = (head: string) => either.slice(either.indexOf(head), either.indexOf('\n    }\n', either.indexOf(head)));
    const pub = block('location = "/v1/either"');
    // one njs use per phase: rewrite (if $gw_apikey), access (auth_request), content (js_content)
    expect(pub.match(/\$gw_apikey|auth_request "|js_content/g)).toEqual(['auth_request "', 'js_content', '$gw_apikey']);
    expect(block('location @gw_next_either_body_hash_key').match(/js_content|auth_request "|\$gw_apikey/g)).toEqual(['js_content']);
    expect(block('location @gw_next_either_body_hash {').match(/js_content|auth_request "|\$gw_apikey/g)).toBeNull();
  });
});
