// TLS server directives per listener. The profiles themselves (Mozilla guidance, sources in
// src/tls/profiles.ts) are shared with the tls commands; here they are checked and emitted.
//
// Every TLS server block of a listener carries the listener's profile, the catch-all that
// refuses unknown names included: nginx negotiates the protocol version, cipher and key
// exchange group with the settings of the default server of the address:port, before the
// SNI name selects a server (the name only swaps the certificate). A catch-all without the
// profile would let TLS 1.2, CBC suites and every OpenSSL default group in.
import type { Listener } from '../../model/types.ts';
import { tlsProfileDirectives } from '../../tls/profiles.ts';
import { q, RenderError } from '../../plan/quote.ts';
import { d, type Directive } from '../../plan/directive.ts';

const PROFILE_ARG = /^[A-Za-z0-9_.:=@+-]+$/;

/** Certificate, HTTP/2 and profile lines of a server block that answers the listener's names. */
export function tlsLines(l: Listener): Directive[] {
  const t = l.tls;
  if (!t) return [];
  const out: Directive[] = [];
  if (t.http2) out.push(d('http2', 'on'));
  out.push(d('ssl_certificate', q(t.cert, 'abspath')), d('ssl_certificate_key', q(t.key, 'abspath')));
  out.push(...tlsProfileLines(l));
  return out;
}

/** The listener's profile alone (protocols, suites, groups, session cache). */
export function tlsProfileLines(l: Listener): Directive[] {
  const t = l.tls;
  if (!t) return [];
  const out: Directive[] = [];
  for (const [name, ...args] of tlsProfileDirectives(t.profile, { sessionCacheZone: 'gw_tls' })) {
    for (const a of [name, ...args]) if (!PROFILE_ARG.test(a)) throw new RenderError(`unexpected TLS profile argument ${JSON.stringify(a)}`);
    out.push(d(name, ...args));
  }
  return out;
}
