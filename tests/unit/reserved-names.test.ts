// Framing header names (GW230) and regex captures shadowing variables (GW231): the shared
// predicates and the positioned diagnostics they produce.
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { isFramingHeader, namedCaptures, reservedVariable } from '../../src/model/reserved-names.ts';

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

const diags = (text: string) => compile('gateway.yaml', { text }).diagnostics.map(formatDiagnostic);

describe('isFramingHeader', () => {
  it('matches framing and hop-by-hop names in any case, Proxy-* as a prefix', () => {
    for (const h of ['Host', 'content-length', 'TRANSFER-ENCODING', 'Connection', 'Keep-Alive', 'Upgrade', 'TE', 'Trailer', 'Proxy-Authorization', 'proxy-connection']) {
      expect(isFramingHeader(h), h).toBe(true);
    }
    for (const h of ['X-Host', 'Hosts', 'Content-Type', 'Trailers-X', 'X-Proxy-Id', 'Tenant', 'Authorization']) {
      expect(isFramingHeader(h), h).toBe(false);
    }
  });
});

describe('namedCaptures', () => {
  it('finds all three PCRE spellings with their offsets', () => {
    expect(namedCaptures("^/(?<a>x)/(?'b'y)/(?P<c>z)$")).toEqual([
      { name: 'a', offset: 2 },
      { name: 'b', offset: 10 },
      { name: 'c', offset: 18 },
    ]);
  });
  it('skips lookbehinds, plain and non-capturing groups, and escaped parentheses', () => {
    expect(namedCaptures('^/(?<=a)(?<!b)(?:c)(d)\\(?<gw_dollar>x\\)$')).toEqual([]);
  });
  it('an escaped backslash does not hide the group after it', () => {
    expect(namedCaptures('^/a\\\\(?<gw_dollar>x)$')).toEqual([{ name: 'gw_dollar', offset: 5 }]);
  });
});

describe('reservedVariable', () => {
  it("reserves the gateway's prefix, nginx variables and nginx's variable prefixes, case-insensitively", () => {
    for (const n of ['gw_dollar', 'GW_Route', 'host', 'Host', 'uri', 'args', 'remote_addr', 'request_id', 'arg_page', 'http_x_user', 'cookie_sid', 'sent_http_location', 'upstream_addr', 'ssl_server_name', 'status', 'scheme']) {
      expect(reservedVariable(n), n).not.toBeNull();
    }
    for (const n of ['tenant', 'user_id', 'version', 'model', 'gwx', 'hostx']) {
      expect(reservedVariable(n), n).toBeNull();
    }
  });
});

describe('diagnostics', () => {
  it('GW231 at the regex for every capture that names a variable; others pass', () => {
    const lines = diags(BASE.replace('{ prefix: /a/ }', () => "{ regex: '^/(?<gw_dollar>[a-z]+)/(?<tenant>[0-9]+)/(?P<Host>.*)$' }"));
    expect(lines.filter((l) => l.includes('GW231'))).toEqual([
      'gateway.yaml:10:21 error GW231 routes[0].match.regex: named capture "gw_dollar" (at offset 2) would replace an nginx variable: the "gw_" prefix is reserved for the gateway\'s own variables; rename the group',
      'gateway.yaml:10:21 error GW231 routes[0].match.regex: named capture "Host" (at offset 41) would replace an nginx variable: $host is an nginx variable; rename the group',
    ]);
  });

  it('GW230 for each framing header name that would be set, all at once, at the key path', () => {
    const text = BASE.replace(
      '    upstream: api\n',
      '    upstream: api\n    set_headers: { Host: evil.example, transfer-encoding: chunked, X-Ok: fine }\n',
    ).replace('version: 1\n', 'version: 1\nglobal:\n  request_id: { header: Content-Length }\n');
    const lines = diags(text).filter((l) => l.includes('GW230'));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^gateway\.yaml:3:\d+ error GW230 global\.request_id\.header: Content-Length cannot be the request-id header/);
    expect(lines[1]).toMatch(/^gateway\.yaml:14:\d+ error GW230 routes\[0\]\.set_headers\.Host: Host cannot be set with set_headers/);
    expect(lines[2]).toMatch(/^gateway\.yaml:14:\d+ error GW230 routes\[0\]\.set_headers\.transfer-encoding: transfer-encoding cannot be set/);
  });

  it('GW230 for identity headers and API-key headers (global and per route)', () => {
    const text = `${BASE.replace('    upstream: api\n', '    upstream: api\n    auth: { methods: [api_key], key_header: Proxy-Authorization }\n')}auth:
  api_keys: { file: keys.yaml, header: Connection }
  identity_headers: { client: Content-Length, role: false }
`;
    const lines = diags(text).filter((l) => l.includes('GW230'));
    expect(lines.map((l) => l.replace(/^gateway\.yaml:\d+:\d+ error GW230 ([^:]+):.*$/, '$1'))).toEqual([
      'routes[0].auth.key_header',
      'auth.api_keys.header',
      'auth.identity_headers.client',
    ]);
  });
});
