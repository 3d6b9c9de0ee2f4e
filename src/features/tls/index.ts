// TLS listeners: certificates, Mozilla profiles, HTTP/2 and HSTS. The ACME flow, certificate
// store and the pending/redirect server blocks are in src/tls and the core server printer.
import type { Feature } from '../../core/feature.ts';
import { d } from '../../plan/directive.ts';
import { q } from '../../render/quote.ts';
import { tlsLines, tlsProfileLines } from '../../render/tls.ts';
import { hstsHeaderValue } from '../../tls/profiles.ts';
import { tlsSchema } from './schema.ts';

export const tlsFeature: Feature = {
  name: 'tls',
  summary: 'TLS profiles, certificates, HTTP/2, HSTS',
  schema: tlsSchema,
  cost: { njsCalls: () => 0, measured: 'TLS handshakes are per connection, not per request' },
  listenerResponseHeaders: (l) => (l.tls?.hsts ? [d('add_header', 'Strict-Transport-Security', q(hstsHeaderValue(l.tls.hsts), 'text'), 'always')] : []),
  // the catch-all server rejects the handshake for unknown names, but as the port's default
  // server it decides protocol, suites and groups for every name, so it carries the profile
  serverHead: (_m, l, server) => (server.catchAll ? tlsProfileLines(l) : tlsLines(l)),
};
