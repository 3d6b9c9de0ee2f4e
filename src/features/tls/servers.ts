// Server blocks of TLS listeners besides the listener's own: the plain-HTTP stand-in while an
// ACME certificate is pending, and the HTTP→HTTPS redirect server (with its target-host map).
import type { GatewayModel, Listener } from '../../model/types.ts';
import { d, type Block } from '../../plan/directive.ts';
import { bare, ident, jsonBody, q } from '../../plan/quote.ts';
import { acmeLocation, healthLocations, listenLine } from '../../targets/nginx/servers.ts';

/** $gw_route of the server that stands in for a listener whose ACME certificate is not issued yet. */
export const PENDING_CERTIFICATE_ROUTE = 'certificate-pending';

/** Until the ACME certificate exists: challenges and health on the plain-HTTP port, 503 for the rest. */
export function pendingCertificateServer(l: Listener, m: GatewayModel): Block {
  const port = l.tls!.redirectFrom ?? 80;
  return {
    comment: `listener ${l.name} (${l.at.path}): certificate pending, port ${port} serves ACME challenges only`,
    head: 'server',
    origin: l.at,
    lines: [
      listenLine(l.address, port, false, l.defaultServer),
      d('server_name', ...(l.serverNames.length ? l.serverNames.map((n) => q(n, 'host')) : ['_'])),
      d('set', '$gw_route', `"${PENDING_CERTIFICATE_ROUTE}"`),
    ],
    blocks: [
      ...acmeLocation(m),
      ...healthLocations(m, []),
      {
        head: 'location /',
        lines: [
          d('default_type', 'application/json'),
          d('return', '503', jsonBody({ error: { status: 503, code: 'certificate_pending', message: 'TLS certificate not issued yet' } })),
        ],
      },
    ],
  };
}

/**
 * The redirect target's host. A listener with server_names never echoes the client's Host:
 * a configured name (or a route host of the listener) is kept, a name matching a wildcard
 * only when it is made of plain DNS labels, anything else goes to the first server name
 * (the first exact one; with wildcards only, the first wildcard's domain).
 * A listener without server_names answers every name on HTTPS too, so the requested name
 * is kept ($host): the Location then names whatever the client itself asked for.
 */
function redirectNames(l: Listener, m: GatewayModel): string[] {
  const routeHosts = m.routes.filter((r) => r.listeners.includes(l.name) && r.match.host !== null).map((r) => r.match.host!);
  const seen = new Set<string>(); // map keys are case-insensitive: one entry per name
  return [...l.serverNames, ...routeHosts].filter((n) => !seen.has(n.toLowerCase()) && !!seen.add(n.toLowerCase()));
}

/** The exact-name keys of the redirect-target maps (they size map_hash_* with the others). */
export function redirectMapKeys(m: GatewayModel): string[][] {
  return m.listeners
    .filter((l) => l.tls?.redirectFrom && !l.tls.pending && l.serverNames.length)
    .map((l) => redirectNames(l, m).filter((n) => !n.startsWith('*.')).map((n) => n.toLowerCase()));
}

function redirectHost(l: Listener, m: GatewayModel): { host: string; map: Block | null } {
  if (!l.serverNames.length) return { host: '$host', map: null };
  const names = redirectNames(l, m);
  const v = `$gw_https_host_${ident(l.name)}`;
  // the first exact server name; with wildcards only, the domain of the first one
  const fallback = l.serverNames.find((n) => !n.startsWith('*.')) ?? l.serverNames[0].slice(2);
  const lines = [d('default', q(fallback, 'host'))];
  for (const n of names) {
    if (n.startsWith('*.')) {
      const suffix = q(n.slice(2), 'host').slice(1, -1).toLowerCase().replace(/\./g, '\\.');
      lines.push(d(q(`~^[a-z0-9-]+(\\.[a-z0-9-]+)*\\.${suffix}$`, 'regex'), '$host'));
    } else {
      lines.push(d(q(n.toLowerCase(), 'host'), q(n, 'host')));
    }
  }
  return {
    host: v,
    map: { comment: `listener ${l.name}: HTTPS redirect target, a configured name (never the client's Host as sent)`, head: `map $host ${v}`, lines },
  };
}

export function redirectServer(l: Listener, m: GatewayModel): Block[] {
  const tls = l.tls!;
  const portPart = l.port === 443 ? '' : `:${bare(l.port, 'int')}`;
  const target = redirectHost(l, m);
  const server: Block = {
    comment: `listener ${l.name}: plain HTTP on ${tls.redirectFrom} redirects to HTTPS`,
    head: 'server',
    origin: l.at,
    lines: [
      listenLine(l.address, tls.redirectFrom!, false, l.defaultServer),
      d('server_name', ...(l.serverNames.length ? l.serverNames.map((n) => q(n, 'host')) : ['_'])),
      d('set', '$gw_route', '"https-redirect"'),
    ],
    blocks: [
      ...acmeLocation(m),
      ...healthLocations(m, []),
      { head: 'location /', lines: [d('return', '301', `https://${target.host}${portPart}$request_uri`)] },
    ],
  };
  return target.map ? [target.map, server] : [server];
}

