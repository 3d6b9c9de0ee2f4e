// worker_shutdown_timeout: how long the workers retired by a reload may keep finishing their
// requests (SSE streams, WebSockets, slow responses) before nginx closes what is left.
// Without it, one open stream keeps a whole old worker set alive for as long as the stream
// lasts, and every deploy adds another set.

import type { Duration, GatewayModel, Route, SourcePos } from './types.ts';

/** Used when no route streams (the longest a plain request should still need after a reload). */
export const SHUTDOWN_DEFAULT_S = 30;
/** Derived values are kept within these bounds (seconds). */
export const SHUTDOWN_MIN_S = 30;
export const SHUTDOWN_MAX_S = 600;
/** Configured values must lie within these (seconds); 0 would mean "wait forever" to nginx. */
const CONFIG_MIN_S = 1;
const CONFIG_MAX_S = 24 * 3600;

const UNIT_S: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, M: 2592000, y: 31536000 };

/** nginx time ("90s", "1m30s", "500ms", "30" = seconds) in seconds; NaN when unparsable. */
export function durationSeconds(d: string): number {
  const re = /([0-9]+)(ms|s|m|h|d|w|M|y)?/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(d); m; m = re.exec(d)) {
    total += Number(m[1]) * UNIT_S[m[2] ?? 's']!;
    end = re.lastIndex;
  }
  return d.length > 0 && end === d.length ? total : Number.NaN;
}

/** Routes whose connections outlive an ordinary request: streaming (SSE, chunked) and WebSocket. */
export function longLivedRoutes(routes: Route[]): Route[] {
  return routes.filter((r) => r.respond === null && (r.streaming || r.websocket));
}

/**
 * Default worker_shutdown_timeout: the longest read timeout of a streaming or WebSocket route,
 * kept within 30s..10m; 30s when there is none.
 */
export function defaultShutdownTimeout(routes: Route[]): Duration {
  let longest = 0;
  for (const r of longLivedRoutes(routes)) {
    const s = durationSeconds(r.timeouts.read);
    if (Number.isFinite(s)) longest = Math.max(longest, s);
  }
  if (longest === 0) return `${SHUTDOWN_DEFAULT_S}s`;
  return `${Math.min(SHUTDOWN_MAX_S, Math.max(SHUTDOWN_MIN_S, Math.ceil(longest)))}s`;
}

/**
 * GW280: worker_shutdown_timeout outside 1s..24h. Derived values always lie within 30s..10m,
 * so only a configured value can trip it.
 */
export function checkShutdownRules(
  m: GatewayModel,
  err: (code: string, at: SourcePos, path: string, message: string) => void,
): void {
  const v = m.global.workerShutdownTimeout;
  const s = durationSeconds(v);
  if (!Number.isFinite(s) || s < CONFIG_MIN_S || s > CONFIG_MAX_S) {
    err('GW280', m.global.at, 'global.worker_shutdown_timeout', `worker_shutdown_timeout must be between 1s and 24h (got ${v}); old workers must not outlive a reload indefinitely`);
  }
}
