// The one quoting helper. Every user-supplied string that reaches nginx config goes through
// q() (quoted) or bare() (identifiers, sizes, durations). Both check the value against an
// allow-list for its context and THROW on anything else: a renderer never silently emits
// an empty or half-escaped value. Newlines and control characters never pass.

import { isFramingHeader } from '../model/reserved-names.ts';

export class RenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RenderError';
  }
}

const QUOTED: Record<string, RegExp> = {
  path: /^\/[A-Za-z0-9._~!&()*+,=:@%/-]*$/,
  regex: /^[^\x00-\x1f\x7f]+$/,
  host: /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$|^_$/,
  header: /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/,
  token: /^[A-Za-z0-9_.-]{1,64}$/,
  file: /^[A-Za-z0-9._/@+-]+$/,
  // an absolute path resolved against the config's directory (which may hold spaces or
  // non-ASCII letters): anything printable except `"`, `\` and `$` (nginx would read a
  // variable in ssl_certificate)
  abspath: /^\/[^\x00-\x1f\x7f"\\$]*$/,
  origin: /^(\*|https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?)$/,
  // free text for header values and response bodies; `$` is neutralised below
  text: /^[^\x00-\x1f\x7f]*$/,
  // nginx-internal values we build ourselves (may reference $variables)
  expr: /^[^\x00-\x1f\x7f"\\]*$/,
};

const BARE: Record<string, RegExp> = {
  name: /^[a-z][a-z0-9_-]{0,62}$/,
  ident: /^[a-z][a-z0-9_]{0,80}$/,
  duration: /^([0-9]+(ms|s|m|h|d|w)?)+$/,
  size: /^[0-9]+[kKmMgG]?$/,
  int: /^-?[0-9]+$/,
  rate: /^[0-9]+r\/[sm]$/,
  address: /^(unix:\/[A-Za-z0-9_./-]+|[A-Za-z0-9.-]+:[0-9]{1,5}|\[[0-9a-fA-F:.]+\]:[0-9]{1,5})$/,
  listen: /^(([0-9.]+|\[[0-9a-fA-F:.]+\]):)?[0-9]{1,5}$/,
  bind: /^([0-9.]+|\[[0-9a-fA-F:.]+\])$/,
  cidr: /^(all|unix:|[0-9.]+(\/[0-9]{1,2})?|[0-9a-fA-F:.]+(\/[0-9]{1,3})?)$/,
  method: /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)$/,
  status: /^[1-5][0-9][0-9]$|^any$/,
  mime: /^[a-z0-9.+-]+\/[a-z0-9.+*-]+$/,
  keyword: /^[a-z_0-9]+$/,
  token: /^[A-Za-z0-9_.-]{1,64}$/,
};

export type QuotedKind = keyof typeof QUOTED;
export type BareKind = keyof typeof BARE;

/**
 * Quote a user string for nginx. Backslashes and double quotes are escaped so nginx's
 * parser restores the exact original; in `text` context `$` becomes `${gw_dollar}` (a
 * geo variable holding a literal dollar) so user text can never reference a variable.
 */
export function q(value: unknown, kind: QuotedKind): string {
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new RenderError(`expected a ${kind} string, got ${value === undefined ? 'undefined' : JSON.stringify(value)}`);
  }
  const s = String(value);
  const re = QUOTED[kind];
  if (!re) throw new RenderError(`unknown quoting context "${kind}"`);
  if (!re.test(s)) throw new RenderError(`unsafe ${kind} value ${JSON.stringify(s)}`);
  let out = s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  if (kind === 'text') out = out.replace(/\$/g, '${gw_dollar}');
  return `"${out}"`;
}

/** Emit an identifier-like value unquoted after checking it against its allow-list. */
export function bare(value: unknown, kind: BareKind): string {
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new RenderError(`expected a ${kind} value, got ${value === undefined ? 'undefined' : JSON.stringify(value)}`);
  }
  const s = String(value);
  const re = BARE[kind];
  if (!re) throw new RenderError(`unknown bare context "${kind}"`);
  if (!re.test(s)) throw new RenderError(`unsafe ${kind} value ${JSON.stringify(s)}`);
  return s;
}

/** A header name the gateway may set (request or response): never a framing header (rules: GW230). */
export function settableHeader(name: string): string {
  if (isFramingHeader(name)) throw new RenderError(`framing header ${JSON.stringify(name)} cannot be set`);
  return q(name, 'header');
}

/** nginx map parameters: a source value spelled like one must be escaped to be matched */
export const MAP_KEYWORDS = ['default', 'hostnames', 'include', 'volatile'];

/** A name (already checked by bare()) as a map source value: a map keyword is escaped with "\\". */
export function mapSourceValue(name: string): string {
  return MAP_KEYWORDS.includes(name) ? `\\${name}` : name;
}

/** nginx variable name for a request header: X-User-Id → $http_x_user_id */
export function headerVar(name: string): string {
  // checked with its prefix: a header name may start with a digit (X-… is not required)
  return `$${bare(`http_${name.toLowerCase().replace(/-/g, '_')}`, 'ident')}`;
}

/** A safe nginx identifier derived from a user name (route-1 → route_1). */
export function ident(name: string): string {
  return bare(name.replace(/-/g, '_'), 'ident');
}

/** A single-quoted JSON body for `return`, with `$` neutralised except our own variables. */
export function jsonBody(obj: unknown, allowVars: string[] = []): string {
  let s = JSON.stringify(obj);
  if (/[\x00-\x1f]/.test(s)) throw new RenderError('control character in JSON body');
  s = s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  s = s.replace(/\$(\{?[a-z_]+\}?)/g, (whole, v: string) => (allowVars.includes(v.replace(/[{}]/g, '')) ? whole : `\${gw_dollar}${v}`));
  return `"${s}"`;
}
