// TLS server directives per listener. The profiles themselves (Mozilla guidance, sources in
// src/tls/profiles.ts) are shared with the tls commands; here they are checked and emitted.
import type { Listener } from '../model/types.ts';
import { tlsProfileDirectives } from '../tls/profiles.ts';
import { q, RenderError } from './quote.ts';
import { d } from './view.ts';

const PROFILE_ARG = /^[A-Za-z0-9_.:=@+-]+$/;

export function tlsLines(l: Listener): string[] {
  const t = l.tls;
  if (!t) return [];
  const out: string[] = [];
  if (t.http2) out.push(d('http2', 'on'));
  out.push(d('ssl_certificate', q(t.cert, 'abspath')), d('ssl_certificate_key', q(t.key, 'abspath')));
  for (const [name, ...args] of tlsProfileDirectives(t.profile, { sessionCacheZone: 'gw_tls' })) {
    for (const a of [name, ...args]) if (!PROFILE_ARG.test(a)) throw new RenderError(`unexpected TLS profile argument ${JSON.stringify(a)}`);
    out.push(d(name, ...args));
  }
  return out;
}
