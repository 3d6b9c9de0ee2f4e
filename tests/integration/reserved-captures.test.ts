// A named capture in a route regex becomes an nginx variable. Named after the gateway's
// literal-dollar variable, it turned every `$` of CSP, set_headers and respond bodies into
// request text (CRLF included: a Set-Cookie response header could be injected). Such a
// config is refused; a capture with a free name changes nothing, checked through real nginx.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { freePort } from '../support/ports.ts';
import { closeAll, startEchoUpstream, type EchoUpstream } from '../support/upstreams.ts';
import { stopAllGateways } from '../support/nginx.ts';
import { buildAndStart, type BuiltGateway } from '../support/gateway.ts';
import { send } from '../support/http.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CONFIG = path.join(HERE, 'reserved-captures.gateway.yaml');

const yaml = (group: string) => `
version: 1
global:
  worker_processes: 1
  status: false
listeners:
  - name: public
    address: 127.0.0.1
    port: \${PORT_GW}
    security_headers: { content_security_policy: "default-src 'self'; x-price 5$" }
upstreams:
  app:
    servers: ["127.0.0.1:\${UP_A}"]
routes:
  - name: proxied
    match: { regex: '^/p/(?<${group}>[^/]+)$' }
    upstream: app
    set_headers: { X-Price: "5$ each" }
  - name: answered
    match: { regex: '^/r/(?<${group}>[^/]+)$' }
    respond: { status: 200, body: "costs 5$" }
`;

// decoded by nginx before the location regex runs: the capture holds CR LF
const INJECT = '%0d%0aSet-Cookie:%20session=stolen%0d%0aX-Injected:%20yes';

describe('the exploit config is refused', () => {
  it('GW231 at the regex of both routes; nothing is rendered', () => {
    const r = compile(CONFIG, { text: yaml('gw_dollar'), env: { PORT_GW: '1', UP_A: '2' } });
    expect(r.ok).toBe(false);
    expect(r.files).toBeNull();
    const lines = r.diagnostics.map(formatDiagnostic).map((l) => l.slice(l.indexOf('reserved-captures.gateway.yaml')));
    expect(lines).toEqual([
      'reserved-captures.gateway.yaml:16:21 error GW231 routes[0].match.regex: named capture "gw_dollar" (at offset 4) would replace an nginx variable: the "gw_" prefix is reserved for the gateway\'s own variables; rename the group',
      'reserved-captures.gateway.yaml:20:21 error GW231 routes[1].match.regex: named capture "gw_dollar" (at offset 4) would replace an nginx variable: the "gw_" prefix is reserved for the gateway\'s own variables; rename the group',
    ]);
  });

  it('nginx variable names and prefixes are refused too', () => {
    for (const name of ['host', 'request_id', 'http_x_real', 'arg_q', 'GW_Route']) {
      const r = compile(CONFIG, { text: yaml(name), env: { PORT_GW: '1', UP_A: '2' } });
      expect(r.diagnostics.map((x) => x.code), name).toEqual(['GW231', 'GW231']);
    }
  });
});

describe('a capture with a free name, through real nginx', () => {
  let up: EchoUpstream;
  let g: BuiltGateway;
  let port: number;

  beforeAll(async () => {
    up = await startEchoUpstream({ id: 'a' });
    port = await freePort();
    g = await buildAndStart({ configPath: CONFIG, text: yaml('part'), env: { PORT_GW: String(port), UP_A: String(up.port) }, ports: [port] });
  });

  afterAll(async () => {
    await g?.stop();
    await closeAll([up]);
    await stopAllGateways();
  });

  it('proxied: the CSP and set_headers keep their literal "$", no header is injected', async () => {
    const res = await send({ port, path: `/p/${INJECT}` });
    expect(res.status, g.gw.errorLog()).toBe(200);
    expect(res.headers['content-security-policy']).toBe("default-src 'self'; x-price 5$");
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers['x-injected']).toBeUndefined();
    const echo = res.json as { headers: Record<string, string> };
    expect(echo.headers['x-price']).toBe('5$ each');
  });

  it('respond: the body keeps its literal "$"', async () => {
    const res = await send({ port, path: `/r/${INJECT}` });
    expect(res.status, g.gw.errorLog()).toBe(200);
    expect(res.text).toBe('costs 5$');
    expect(res.headers['content-security-policy']).toBe("default-src 'self'; x-price 5$");
    expect(res.headers['set-cookie']).toBeUndefined();
  });
});
