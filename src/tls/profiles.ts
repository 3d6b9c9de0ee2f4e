// TLS server profiles and the ACME challenge location, returned as data
// ([directive, ...args]) so the renderer quotes every argument itself.
//
// Sources (Mozilla Server Side TLS guidelines, version 5.7, as produced by the Mozilla SSL
// Configuration Generator for nginx >= 1.25 and OpenSSL 3):
//   https://wiki.mozilla.org/Security/Server_Side_TLS
//   https://ssl-config.mozilla.org/#server=nginx&config=modern
//   https://ssl-config.mozilla.org/#server=nginx&config=intermediate
//   https://ssl-config.mozilla.org/guidelines/5.7.json
// - modern: TLS 1.3 only; TLS 1.3 suites are not configurable through ssl_ciphers and all
//   three OpenSSL defaults are acceptable, so no ssl_ciphers line.
// - intermediate: TLS 1.2 + 1.3 with the ECDHE/DHE AEAD suites below. The DHE suites only
//   take effect with ssl_dhparam (Mozilla suggests the RFC 7919 ffdhe2048 group); without
//   it nginx offers the ECDHE suites only, which every TLS 1.2 client of this profile has.
// - both: ssl_prefer_server_ciphers off (all offered suites are strong; let the client pick
//   AES-GCM or ChaCha20 according to its hardware), shared session cache of 10 MB (about
//   40000 sessions), 1 day timeout, session tickets off (nginx never rotates ticket keys,
//   which would undermine forward secrecy), curves X25519, P-256, P-384.
// - OCSP stapling: only when the chain/trusted CA file is known. Let's Encrypt stopped
//   embedding OCSP URLs in 2025, so for ACME certificates from it stapling is a no-op.

export type TlsProfile = 'modern' | 'intermediate';
export type Directive = [string, ...string[]];

export const INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
].join(':');

export const ECDH_CURVES = 'X25519:prime256v1:secp384r1';

export interface TlsProfileOptions {
  /** PEM file with the issuer chain (root + intermediates) for OCSP stapling verification. */
  trustedCertificate?: string | null;
  /** Name of the shared session cache zone; one zone shared by every TLS server block. */
  sessionCacheZone?: string;
}

/**
 * nginx directives for a TLS profile (server or http context). Does not include
 * ssl_certificate / ssl_certificate_key, `listen ... ssl`, `http2 on` or HSTS (see
 * hstsHeaderValue); those depend on the listener.
 */
export function tlsProfileDirectives(profile: TlsProfile, opts: TlsProfileOptions = {}): Directive[] {
  const zone = opts.sessionCacheZone ?? 'gw_tls';
  if (!/^[A-Za-z0-9_]+$/.test(zone)) throw new Error(`invalid session cache zone name: ${zone}`);
  const out: Directive[] = [];
  if (profile === 'modern') {
    out.push(['ssl_protocols', 'TLSv1.3']);
  } else if (profile === 'intermediate') {
    out.push(['ssl_protocols', 'TLSv1.2', 'TLSv1.3']);
    out.push(['ssl_ciphers', INTERMEDIATE_CIPHERS]);
  } else {
    throw new Error(`unknown TLS profile: ${String(profile)}`);
  }
  out.push(
    ['ssl_ecdh_curve', ECDH_CURVES],
    ['ssl_prefer_server_ciphers', 'off'],
    ['ssl_session_cache', `shared:${zone}:10m`],
    ['ssl_session_timeout', '1d'],
    ['ssl_session_tickets', 'off'],
  );
  if (opts.trustedCertificate) {
    out.push(['ssl_stapling', 'on'], ['ssl_stapling_verify', 'on'], ['ssl_trusted_certificate', opts.trustedCertificate]);
  }
  return out;
}

/** Value of the Strict-Transport-Security header (emit with `add_header ... always`). */
export function hstsHeaderValue(hsts: { maxAge: number; includeSubdomains: boolean; preload: boolean }): string {
  let v = `max-age=${Math.max(0, Math.floor(hsts.maxAge))}`;
  if (hsts.includeSubdomains) v += '; includeSubDomains';
  if (hsts.preload) v += '; preload';
  return v;
}

export interface LocationBlock {
  /** location modifier and path: `location ^~ /.well-known/acme-challenge/ { ... }` */
  modifier: '^~';
  path: string;
  directives: Directive[];
}

/**
 * The ACME HTTP-01 location every plain-HTTP server block must carry, before any redirect
 * to HTTPS (the redirect belongs in `location /`, never as a server-level `return`, which
 * would run before location matching). Files live at <webroot>/.well-known/acme-challenge/.
 */
export function acmeChallengeLocation(webroot: string): LocationBlock {
  return {
    modifier: '^~',
    path: '/.well-known/acme-challenge/',
    directives: [
      ['root', webroot],
      ['default_type', 'text/plain'],
      ['try_files', '$uri', '=404'],
      ['access_log', 'off'],
    ],
  };
}

/** Plain-text rendering of directives, for docs, tests and hand-written configs. */
export function formatDirectives(directives: Directive[], indent = ''): string {
  const quote = (a: string) => (/^[A-Za-z0-9_.:\/=$@+-]+$/.test(a) ? a : `"${a.replace(/(["\\])/g, '\\$1')}"`);
  return directives.map(([name, ...args]) => `${indent}${name} ${args.map(quote).join(' ')};`).join('\n');
}
