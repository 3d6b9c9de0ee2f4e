// Token budgets and request windows of an hour or a day (src/features/limits/tokens.ts):
// fixed-window counters in the shared dict gw_tokens, keyed "zone|key|window start". No call of
// their own: the body step (njs/lib/routing.ts) reserves, the shared log-phase call
// (njs/lib/metrics.ts metricsLog) reconciles, the shared body filter (njs/lib/llm.ts) reads the
// usage and drops the usage chunk a client did not ask for.
//
//   $gw_budgets       "<windows>|<tokens>", set in the route's public location (one read):
//                       windows  "name:key:seconds:requests;…"                      (r/h, r/d)
//                       tokens   "name:key:seconds:tokens:default_max:mode:min;…"  (budgets)
//   $gw_tokens        the reservation, JSON {p: prompt estimate, k: [[dict key, reserved,
//                     window end ms], …]}
//   $gw_llm           set to "i" when include_usage was added: the body filter (which reads
//                     $gw_llm anyway) then hides the usage from the client
//   $gw_tokens_body   the rewritten body ("" = the client's own)
//   $gw_tokens_retry  Retry-After of a refusal: seconds to the end of the refusing window
//   $gw_tokens_left   tokens left in the refusing budget's window
//
// Estimate = prompt estimate + completion: the prompt is ceil(characters / 4) of the text of
// `messages` (string contents and the text parts of array contents), `prompt` or `input`;
// the completion is max_completion_tokens, else max_tokens, else the zone's default_max_tokens.
// The reservation is one incr per zone (atomic in the dict): when the sum passes the
// allowance the incr is taken back and the request refused (or clamped), so concurrent
// requests never admit more than the allowance between them.

const ZONE = 'gw_tokens';

export interface Reservation {
  p: number;
  k: (string | number)[][];
}

/**
 * Reserve the request's windows and budgets. false: refused (the response is under way);
 * true: go on (the body may have been rewritten into $gw_tokens_body).
 */
export function reserveBudgets(r: NginxHTTPRequest, doc: { [k: string]: unknown }, model: string): boolean {
  // helpers nested: njs creates a handler's inner functions on each call, these only when a
  // route has budgets (the body step holds this function)
  function keyValue(r: NginxHTTPRequest, kind: string, model: string): string {
    const v = r.variables;
    let s = '';
    if (kind === 'client_id') {
      s = v.gw_client_id || '';
    } else if (kind === 'tier') {
      s = v.gw_client_tier || '';
    } else if (kind === 'model') {
      s = model;
    } else if (kind === 'route') {
      s = v.gw_route || '';
    }
    if (s === '') {
      // unknown client or tier, or client_ip: counted by address (omitting a value never bypasses)
      s = 'ip:' + (v.remote_addr || '');
    }
    return s.length > 200 ? s.substring(0, 200) : s;
  }

  function textLength(x: unknown): number {
    if (typeof x === 'string') {
      return x.length;
    }
    if (Array.isArray(x)) {
      let n = 0;
      for (let i = 0; i < x.length; i++) {
        const e = x[i];
        if (typeof e === 'string') {
          n += e.length;
        } else if (e !== null && typeof e === 'object') {
          const o = e as { [k: string]: unknown };
          n += textLength(o.content) + textLength(o.text);
        }
      }
      return n;
    }
    return 0;
  }

  /** ceil(characters / 4) of the prompt text of a chat, completion or responses request */
  function promptEstimate(doc: { [k: string]: unknown }): number {
    const n = textLength(doc.messages) + textLength(doc.prompt) + textLength(doc.input);
    return Math.ceil(n / 4);
  }

  function countOf(x: unknown): number {
    return typeof x === 'number' && x >= 0 && x === Math.floor(x) ? x : -1;
  }

  function refuse(r: NginxHTTPRequest, status: number, retry: number, left: number): boolean {
    const v = r.variables;
    v.gw_tokens_retry = String(retry < 1 ? 1 : retry);
    v.gw_tokens_left = String(left < 0 ? 0 : left);
    r.return(status);
    return false;
  }

  function undo(d: NgxSharedDict<number>, taken: (string | number)[][]): void {
    for (let i = 0; i < taken.length; i++) {
      d.incr(taken[i][0] as string, -(taken[i][1] as number), 0);
    }
  }

  const v = r.variables;
  const spec = v.gw_budgets || '';
  if (spec === '') {
    return true;
  }
  const bar = spec.indexOf('|');
  const ws = spec.substring(0, bar);
  const ts = spec.substring(bar + 1);
  const d = ngx.shared[ZONE] as NgxSharedDict<number>;
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  const taken: (string | number)[][] = [];
  try {
    if (ws !== '') {
      const zs = ws.split(';');
      for (let i = 0; i < zs.length; i++) {
        const z = zs[i].split(':');
        const w = Number(z[2]);
        const start = sec - (sec % w);
        const end = (start + w) * 1000;
        const k = z[0] + '|' + keyValue(r, z[1], model) + '|' + start;
        const n = d.incr(k, 1, 0, end - now + 60000);
        taken.push([k, 1]);
        if (n > Number(z[3])) {
          undo(d, taken);
          return refuse(r, 429, Math.ceil((end - now) / 1000), 0);
        }
      }
    }
    if (ts === '') {
      return true;
    }
    const prompt = promptEstimate(doc);
    const field = countOf(doc.max_completion_tokens) >= 0 ? 'max_completion_tokens' : countOf(doc.max_tokens) >= 0 ? 'max_tokens' : '';
    const asked = field === '' ? -1 : (doc[field] as number);
    const entries: (string | number)[][] = [];
    let cap = -1;
    const zs = ts.split(';');
    for (let i = 0; i < zs.length; i++) {
      const z = zs[i].split(':');
      const w = Number(z[2]);
      const allowance = Number(z[3]);
      const start = sec - (sec % w);
      const end = (start + w) * 1000;
      const est = prompt + (asked >= 0 ? asked : Number(z[4]));
      const k = z[0] + '|' + keyValue(r, z[1], model) + '|' + start;
      const after = d.incr(k, est, 0, end - now + 60000);
      taken.push([k, est]);
      entries.push([k, est, end]);
      if (after > allowance) {
        const left = allowance - (after - est);
        const room = left - prompt;
        if (z[5] === 'clamp' && room >= Number(z[6])) {
          cap = cap < 0 || room < cap ? room : cap;
        } else {
          undo(d, taken);
          return refuse(r, 461, Math.ceil((end - now) / 1000), left);
        }
      }
    }
    let rewrite = false;
    if (cap >= 0) {
      // clamp: every zone keeps prompt + cap; the upstream is told the cap
      for (let i = 0; i < entries.length; i++) {
        const over = (entries[i][1] as number) - (prompt + cap);
        if (over > 0) {
          d.incr(entries[i][0] as string, -over, 0);
          entries[i][1] = prompt + cap;
        }
      }
      doc[field === '' ? 'max_tokens' : field] = cap;
      rewrite = true;
    }
    let inject = false;
    if (doc.stream === true) {
      const so = doc.stream_options;
      if (so === null || typeof so !== 'object') {
        doc.stream_options = { include_usage: true };
        inject = true;
      } else if ((so as { [k: string]: unknown }).include_usage !== true) {
        (so as { [k: string]: unknown }).include_usage = true;
        inject = true;
      }
    }
    if (rewrite || inject) {
      v.gw_tokens_body = JSON.stringify(doc);
    }
    if (inject) {
      v.gw_llm = 'i';
    }
    v.gw_tokens = JSON.stringify({ p: prompt, k: entries });
    return true;
  } catch (e) {
    // the dict is full or unusable: refuse rather than admit uncounted requests
    try {
      undo(d, taken);
    } catch (e2) {
      // nothing more to take back
    }
    return refuse(r, 461, 1, 0);
  }
}

// the log phase (metricsLog): adjust each reservation ($gw_tokens, s) to what the request used
export function reconcileBudgets(r: NginxHTTPRequest, s: string): void {
  /**
   * The tokens a finished request used, from the body filter's record "$gw_llm"
   * ("ttft|model|input|output|flag|deltas"), or -1 to keep the reservation:
   *   usage seen                         input + output
   *   a stream without its usage (cut)   prompt estimate + content deltas seen
   *   another 2xx without usage          -1 (the reservation stands)
   *   the client left before an answer   the prompt estimate
   *   anything else (upstream errors)    0
   */
  function usedTokens(llm: string, status: number, prompt: number): number {
    if (llm === '' || llm === 'i') {
      return status === 499 ? prompt : 0;
    }
    const f = llm.split('|');
    if (f[4] === '' && f[2] !== '' && f[3] !== '') {
      return Number(f[2]) + Number(f[3]);
    }
    if (f[0] !== '') {
      return prompt + (Number(f[5]) || 0);
    }
    if (f[4] !== '' || (status >= 200 && status < 300)) {
      return -1;
    }
    return 0;
  }

  const v = r.variables;
  const rec = JSON.parse(s) as Reservation;
  const used = usedTokens(v.gw_llm || '', Number(v.status), rec.p);
  if (used < 0) {
    return;
  }
  const d = ngx.shared[ZONE] as NgxSharedDict<number>;
  const now = Date.now();
  for (let i = 0; i < rec.k.length; i++) {
    const e = rec.k[i];
    const delta = used - (e[1] as number);
    const end = e[2] as number;
    if (delta !== 0 && end > now) {
      d.incr(e[0] as string, delta, 0, end - now + 60000);
    }
  }
}
