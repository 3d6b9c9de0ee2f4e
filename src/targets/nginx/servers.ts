// Building blocks of server blocks that the core and features share: listen lines, the
// gateway's own health and readiness locations, the ACME HTTP-01 challenge location.
import type { GatewayModel } from '../../model/types.ts';
import { d, type Block } from '../../plan/directive.ts';
import { bare, jsonBody, q } from '../../plan/quote.ts';

export function listenLine(address: string | null, port: number, ssl: boolean, def: boolean): string {
  const parts = ['listen', address ? `${bare(address, 'bind')}:${bare(port, 'int')}` : bare(port, 'int')];
  if (ssl) parts.push('ssl');
  if (def) parts.push('default_server');
  return d(...parts);
}

export function healthLocations(m: GatewayModel, headers: string[]): Block[] {
  return [
    {
      head: `location = ${q(m.global.health.liveness, 'path')}`,
      lines: [d('access_log', 'off'), d('default_type', 'application/json'), ...headers, d('return', '200', jsonBody({ status: 'ok' }))],
    },
    {
      head: `location = ${q(m.global.health.readiness, 'path')}`,
      lines: [
        d('access_log', 'off'),
        d('default_type', 'application/json'),
        ...headers,
        d('return', '200', jsonBody({ status: 'ready', config: m.source.hash })),
      ],
    },
  ];
}

export function acmeLocation(m: GatewayModel): Block[] {
  if (!m.global.acmeWebroot) return [];
  return [
    {
      comment: 'ACME HTTP-01 challenges are always answered, even where everything else redirects',
      head: 'location ^~ /.well-known/acme-challenge/',
      lines: [d('root', q(m.global.acmeWebroot, 'abspath')), d('default_type', 'text/plain'), d('try_files', '$uri', '=404')],
    },
  ];
}

