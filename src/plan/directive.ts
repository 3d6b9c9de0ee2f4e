// Typed nginx directives and blocks: the vocabulary every plan contribution is written in.
//
// A Directive is a printed nginx directive line, branded so that only d() (a directive whose
// arguments were already passed through the quoting helper in src/render/quote.ts) and raw()
// (the unsafe_nginx_* escape hatch and comments) can make one: a plan slot can never receive
// an arbitrary string. Nothing downstream ever parses a Directive back: the plan decides where
// each one goes from the slot it was put in, not from its text.

import type { GatewayModel, SourcePos } from '../model/types.ts';

declare const directiveBrand: unique symbol;
export type Directive = string & { readonly [directiveBrand]: true };

/** `name arg1 arg2;` — arguments must already be quoted/checked (q(), bare()). */
export const d = (...parts: string[]): Directive => `${parts.join(' ')};` as Directive;

/** A verbatim line: a comment, or a line of an unsafe_nginx_* snippet (flagged by validate). */
export const raw = (line: string): Directive => line as Directive;

export interface Block {
  comment?: string;
  /** e.g. `location = "/health"`; "" for an inline group (inlineDirectives) */
  head: string;
  lines: string[];
  blocks?: Block[];
  /** the gateway.yaml entry this block comes from (nested blocks inherit it); `check` maps
   *  nginx's errors back through it */
  origin?: SourcePos;
  /** per-line entries where a line comes from elsewhere than the block (raw snippets) */
  lineOrigins?: (SourcePos | undefined)[];
}

/**
 * Directives printed in place among a block's nested blocks, without braces: rewrite-phase
 * directives (`set`) that must run after the `if` checks before them (a block's own lines print
 * before all of its nested blocks).
 */
export function inlineDirectives(lines: string[], comment?: string): Block {
  return { head: '', lines, ...(comment ? { comment } : {}) };
}

/** A JSON access-log field: name, nginx variable, whether the value is quoted (strings) or not (numbers). */
export type LogField = [string, string, boolean];

/**
 * The request id as the gateway's own directives read it: nginx's `$request_id` itself when
 * the gateway always generates it, `$gw_request_id` (the map honouring an incoming id) when
 * it may take the client's. Going through the map when it can only answer `$request_id` costs
 * ~1,200 instructions a request (nginx hashes the 32-character id to look it up); the map
 * stays defined for the rare readers by name (njs, error bodies).
 */
export const requestIdVar = (m: GatewayModel): string => (m.global.requestId.trustIncoming ? '$gw_request_id' : '$request_id');

/** The fields every JSON log line of the gateway starts with (access log, auth-failure log). */
export const requestLogFields = (m: GatewayModel): LogField[] => [
  ['time', '$time_iso8601', true],
  ['request_id', requestIdVar(m), true],
  ['remote_addr', '$remote_addr', true],
  ['host', '$host', true],
  ['method', '$request_method', true],
];

/** The single-quoted template of a `log_format … escape=json` line. */
export function jsonLogTemplate(fields: LogField[]): string {
  return `'{${fields.map(([k, v, quoted]) => (quoted ? `"${k}":"${v}"` : `"${k}":${v}`)).join(',')}}'`;
}
