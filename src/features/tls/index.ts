// TLS listeners: certificates, Mozilla profiles, HTTP/2 and HSTS. The ACME flow, certificate
// store and the pending/redirect server blocks are in src/tls and the core server printer.
import type { Feature } from '../../core/feature.ts';
import type { Diagnostic, GatewayModel } from '../../model/types.ts';
import type { Inputs } from '../../config/inputs.ts';
import { d } from '../../plan/directive.ts';
import { q } from '../../plan/quote.ts';
import { tlsLines, tlsProfileLines } from './render.ts';
import { hstsHeaderValue } from '../../tls/profiles.ts';
import { pendingCertificateServer, redirectMapKeys, redirectServer } from './servers.ts';
import { tlsSchema } from './schema.ts';

/** ACME listeners whose certificate files must exist before they are served. */
const acmeListeners = (m: GatewayModel) => (m.acme ? m.listeners.filter((l) => l.tls?.acme) : []);

/**
 * An ACME-managed certificate that has not been issued yet cannot be loaded by nginx, so
 * until it exists the build serves plain HTTP with the challenge location only (and nginx
 * accepts the config); `gatewayctl tls issue` then rebuilds with the TLS server in place.
 */
function markPendingCertificates(m: GatewayModel, inputs: Inputs): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const l of acmeListeners(m)) {
    if (inputs.exists(l.tls!.cert) && inputs.exists(l.tls!.key)) continue;
    l.tls!.pending = true;
    out.push({
      code: 'GW502',
      severity: 'warning',
      message: `certificate for ${m.acme!.domains[0]} not issued yet: listener ${l.name} is left out and port ${l.tls!.redirectFrom ?? 80} serves ACME challenges only; run \`gatewayctl tls issue\``,
      at: l.tls!.at,
    });
  }
  return out;
}

export const tlsFeature: Feature = {
  name: 'tls',
  summary: 'TLS profiles, certificates, HTTP/2, HSTS',
  schema: tlsSchema,
  cost: { njsCalls: () => 0, measured: 'TLS handshakes are per connection, not per request' },
  listenerResponseHeaders: (l) => (l.tls?.hsts ? [d('add_header', 'Strict-Transport-Security', q(hstsHeaderValue(l.tls.hsts), 'text'), 'always')] : []),
  // the catch-all server rejects the handshake for unknown names, but as the port's default
  // server it decides protocol, suites and groups for every name, so it carries the profile
  inputs: (m) => acmeListeners(m).flatMap((l) => [{ kind: 'exists' as const, file: l.tls!.cert }, { kind: 'exists' as const, file: l.tls!.key }]),
  finalize: markPendingCertificates,
  // the redirect-target maps are printed with the servers; their keys size map_hash_* too
  http: (m) => ({ mapKeys: redirectMapKeys(m) }),
  listenerServers: (m, l) => {
    if (l.tls?.pending) return { instead: [pendingCertificateServer(l, m)] };
    return l.tls?.redirectFrom ? { after: redirectServer(l, m) } : null;
  },
  serverHead: (_m, l, server) => (server.catchAll ? tlsProfileLines(l) : tlsLines(l)),
};
