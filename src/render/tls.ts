// TLS server directives per listener. Profiles follow Mozilla's server-side TLS guidance
// (https://ssl-config.mozilla.org, guidelines 5.7): "modern" is TLS 1.3 only; "intermediate"
// adds TLS 1.2 with forward-secret AEAD suites only (no DHE, so no dhparam file is needed).
import type { Listener } from '../model/types.ts';
import { q } from './quote.ts';
import { d } from './view.ts';

export const TLS_PROFILES = {
  modern: { protocols: ['TLSv1.3'], ciphers: null as string | null },
  intermediate: {
    protocols: ['TLSv1.2', 'TLSv1.3'],
    ciphers:
      'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305',
  },
};

export function tlsLines(l: Listener): string[] {
  const t = l.tls;
  if (!t) return [];
  const p = TLS_PROFILES[t.profile];
  const out: string[] = [];
  if (t.http2) out.push(d('http2', 'on'));
  out.push(d('ssl_certificate', q(t.cert, 'file')), d('ssl_certificate_key', q(t.key, 'file')));
  out.push(d('ssl_protocols', ...p.protocols));
  if (p.ciphers) out.push(d('ssl_ciphers', p.ciphers));
  out.push(d('ssl_prefer_server_ciphers', 'off'));
  return out;
}
