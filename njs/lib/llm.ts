// LLM accounting on LLM routes and routes with token budgets (src/features/metrics, shared
// with src/features/limits/tokens.ts): a body filter that looks at the response as it passes
// by. Every chunk is handed on with r.sendBuffer() before it is looked at, so nothing is
// buffered or delayed and the body is never changed (Content-Length stays valid) — except on
// a stream whose request the body step gave `stream_options.include_usage` the client had not
// asked for (the body step sets $gw_llm to "i", kept as its last field): there complete SSE events are passed on as they come,
// without their `"usage":null` members, the usage-only event is dropped, and only the bytes of
// an incomplete event wait for the rest of it.
//
//   js_var $gw_llm;        "ttft|model|input|output|flag|deltas|hide", read by the shared log-phase
//                          call (metrics, token reconciliation) and, through maps, by the JSON
//                          access log; deltas: non-empty "content" strings seen in a stream
//                          (the completion of a stream cut before its usage chunk), "-" when
//                          no token budget reserved for the request (not counted); hide:
//                          "i" when the usage is taken out of what the client gets
//   js_var $gw_llm_scan;   the usage scanner's carry between chunks (njs/lib/usage.ts)
//   js_body_filter gateway.llmBody buffer_type=buffer;   (in the location that proxies)
//
// ttft: $request_time when the first body bytes of a text/event-stream response pass (""
// for non-streamed responses, whose first byte is the whole answer); model: the request's
// (`$gw_model`, model routes) or else the response's `model` field; input/output: the last
// usage object seen ("" while none was: a stream cut before its final chunk stays unknown);
// flag: "encoded" when the upstream compressed the body anyway (tokens unknown).
import { scanUsage, stringField, type Usage } from './usage.ts';

// a model name as a label value: at most 100 characters of [A-Za-z0-9._:/@+-], else "other"
export function modelLabel(m: string): string {
  if (m === '') {
    return '';
  }
  return m.length <= 100 && /^[A-Za-z0-9._:\/@+-]+$/.test(m) ? m : 'other';
}

function look(r: NginxHTTPRequest, data: Buffer, s: string): void {
  const v = r.variables;
  let f: string[];
  if (s === '' || s === 'i') {
    const h = r.headersOut;
    const ct = h['Content-Type'] || '';
    // the upstream's encoding, not headersOut's: the gateway's own gzip sets that one in the
    // header phase, but compresses after this filter (the filter reads plain text then)
    const enc = v.upstream_http_content_encoding || '';
    // deltas are counted only for a token budget's reconciliation (a request that reserved:
    // $gw_tokens); "-" otherwise, so the fast path never scans for them
    f = [ct.indexOf('text/event-stream') === 0 ? v.request_time || '' : '', modelLabel(v.gw_model || ''), '', '', enc !== '' && enc !== 'identity' ? 'encoded' : '', v.gw_tokens ? '0' : '-', s];
  } else {
    f = s.split('|');
  }
  if (f[4] === '') {
    const text = data.toString();
    if (f[0] !== '' && f[5] !== '-') {
      // non-empty "content" strings (quotes inside JSON strings are escaped: only keys match)
      const deltas = text.match(/"content"\s*:\s*"[^"]/g);
      if (deltas !== null) {
        f[5] = String((Number(f[5]) || 0) + deltas.length);
      }
    }
    const carry = v.gw_llm_scan || '';
    if (f[1] === '') {
      f[1] = modelLabel(stringField(carry + text, 'model'));
    }
    const seen: Usage | null = f[2] === '' ? null : { input: Number(f[2]), output: Number(f[3]) };
    const sc = scanUsage(carry, text, seen);
    if (sc.usage !== null) {
      f[2] = String(sc.usage.input);
      f[3] = String(sc.usage.output);
    }
    if (sc.carry !== carry) {
      v.gw_llm_scan = sc.carry;
    }
  }
  const next = f.join('|');
  if (next !== s) {
    v.gw_llm = next;
  }
}

// $gw_llm ends in "i": the include_usage the body step added is taken out again
function passHidingUsage(r: NginxHTTPRequest, data: Buffer, flags: NginxHTTPSendBufferOptions): void {
  // an event of a stream whose usage the client did not ask for: the usage-only chunk is dropped,
  // the `"usage":null` member of the others removed
  function hideUsage(ev: string): string {
    if (ev.indexOf('"usage"') < 0) {
      return ev;
    }
    // compact JSON (OpenAI, vLLM) or with spaces after ":" and "," (Python's json.dumps)
    if (/"choices"\s*:\s*\[\s*\]/.test(ev) && /"usage"\s*:\s*\{/.test(ev)) {
      return '';
    }
    return ev.replace(/,\s*"usage"\s*:\s*null/g, '');
  }
  const v = r.variables;
  const ct = r.headersOut['Content-Type'] || '';
  if (ct.indexOf('text/event-stream') !== 0) {
    r.sendBuffer(data, flags);
    return;
  }
  const carry = v.gw_tokens_carry || '';
  const buf = carry === '' ? data : Buffer.concat([Buffer.from(carry, 'base64'), data]);
  // complete events end with a blank line; the bytes after the last one wait (an event is
  // complete text in itself: the split is never inside a character)
  let cut = buf.lastIndexOf('\n\n');
  cut = cut < 0 ? 0 : cut + 2;
  if (flags.last) {
    cut = buf.length;
  }
  const rest = cut < buf.length ? buf.slice(cut).toString('base64') : '';
  if (rest !== carry) {
    v.gw_tokens_carry = rest;
  }
  let out = '';
  if (cut > 0) {
    const events = buf.slice(0, cut).toString().split('\n\n');
    for (let i = 0; i < events.length; i++) {
      const ev = events[i] === '' ? '' : hideUsage(events[i]);
      if (i === events.length - 1) {
        out += ev; // "" unless the stream ended inside an event
      } else if (ev !== '' || events[i] === '') {
        out += ev + '\n\n';
      }
    }
  }
  r.sendBuffer(out, flags);
}

// js_body_filter gateway.llmBody buffer_type=buffer;
export function llmBody(r: NginxHTTPRequest, data: Buffer, flags: NginxHTTPSendBufferOptions): void {
  const s = r.variables.gw_llm || '';
  if (s !== '' && s.charAt(s.length - 1) === 'i') {
    passHidingUsage(r, data, flags);
  } else {
    r.sendBuffer(data, flags);
  }
  if (data.length === 0) {
    return;
  }
  try {
    look(r, data, s);
  } catch (e) {
    // accounting never breaks a response: the tokens stay unknown
  }
}

// llmBody for a steady chunk (src/njs/bundle.ts, hasFastPath): a stream past its first chunk
// whose model is known and whose scanner keeps no carry, and a chunk ending in a newline whose
// only "usage" keys are `"usage":null` and whose "content" keys are compact; where the usage
// is hidden from the client, a chunk of whole events whose `,"usage":null` members are cut out
// of what is handed on. Such a chunk changes nothing but the deltas count, so it is
// searched as bytes (no text decoding, no regex: the full path costs ~90k instructions a
// chunk, this one ~27k); anything else goes to the full handler, which decides from scratch.
// Written flat, with no helper declarations (each would be created again in every call).
export function llmBodyFast(r: NginxHTTPRequest, full: (r: NginxHTTPRequest, data: Buffer, flags: NginxHTTPSendBufferOptions) => void, data: Buffer, flags: NginxHTTPSendBufferOptions): void {
  const v = r.variables;
  const s = v.gw_llm || '';
  const n = s.length;
  const len = data.length;
  if (len === 0 && (n === 0 || s[n - 1] !== 'i' || !v.gw_tokens_carry)) {
    // an empty buffer (the last one, typically) is handed on and changes nothing (hiding the
    // usage, unless part of an event waits: the full filter then hands that on)
    r.sendBuffer(data, flags);
    return;
  }
  // "ttft|model|input|output||deltas|" or, with the usage hidden, "…||deltas|i": the flag empty
  const hide = n > 0 && s[n - 1] === 'i';
  const e = hide ? n - 2 : n - 1; // the bar after deltas
  if (n < 6 || s[e] !== '|' || len < 2 || data[len - 1] !== 10 || v.gw_llm_scan) {
    full(r, data, flags);
    return;
  }
  // hiding: a stream's chunk of whole events (ending in a blank line, nothing carried over)
  if (hide && (s[0] === '|' || data[len - 2] !== 10 || v.gw_tokens_carry)) {
    full(r, data, flags);
    return;
  }
  const p = s.lastIndexOf('|', e - 1); // the bar before deltas
  const a = s.indexOf('|');
  if (p < 1 || s[p - 1] !== '|' || s[a + 1] === '|') {
    // the flag is set (its field is not empty) or the model is not known yet
    full(r, data, flags);
    return;
  }
  // every "usage" key is "usage":null, compact (it never changes a usage seen); hiding, also
  // right after a comma: ',"usage":null' is what the full filter takes out of each event
  let u = data.indexOf('"usage"');
  const cuts: number[] = [];
  while (u >= 0) {
    if (u + 11 >= len || data[u + 7] !== 58 || data[u + 8] !== 110 || data[u + 9] !== 117 || data[u + 10] !== 108 || data[u + 11] !== 108 || (hide && data[u - 1] !== 44)) {
      full(r, data, flags);
      return;
    }
    if (hide) {
      cuts.push(u);
    }
    u = data.indexOf('"usage"', u + 12);
  }
  let k = 0;
  if (s[p + 1] !== '-' && s[0] !== '|') {
    let c = data.indexOf('"content"');
    while (c >= 0) {
      // "content":"x…" (compact, not empty) counts; "content":"" does not; any other form
      // (spaces, null) is the full handler's
      if (c + 10 >= len || data[c + 9] !== 58 || data[c + 10] !== 34) {
        full(r, data, flags);
        return;
      }
      if (c + 11 < len && data[c + 11] !== 34) {
        k++;
      }
      c = data.indexOf('"content"', c + 11);
    }
  }
  if (cuts.length === 0) {
    r.sendBuffer(data, flags);
  } else {
    // the bytes between the ',"usage":null' members (13 bytes from the comma), each piece
    // handed on as it is
    let from = 0;
    for (let j = 0; j < cuts.length; j++) {
      r.sendBuffer(data.slice(from, cuts[j] - 1));
      from = cuts[j] + 12;
    }
    r.sendBuffer(data.slice(from), flags);
  }
  if (k > 0) {
    // no String(): a global's lookup costs ~2.5k instructions in a request VM
    v.gw_llm = s.substring(0, p + 1) + (+s.substring(p + 1, e) + k) + s.substring(e);
  }
}
