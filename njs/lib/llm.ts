// LLM accounting on LLM routes (src/features/metrics): a body filter that only looks at the
// response as it passes by. Every chunk is handed on with r.sendBuffer() before it is looked at,
// so nothing is buffered or delayed and the body is never changed (Content-Length stays valid).
//
//   js_var $gw_llm;        "ttft|model|input|output|flag", read by the log-phase metrics call
//                          and, through maps, by the JSON access log
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

function look(r: NginxHTTPRequest, data: Buffer): void {
  const v = r.variables;
  const s = v.gw_llm || '';
  let f: string[];
  if (s === '') {
    const h = r.headersOut;
    const ct = h['Content-Type'] || '';
    const enc = h['Content-Encoding'] || '';
    f = [ct.indexOf('text/event-stream') === 0 ? v.request_time || '' : '', modelLabel(v.gw_model || ''), '', '', enc !== '' && enc !== 'identity' ? 'encoded' : ''];
  } else {
    f = s.split('|');
  }
  if (f[4] === '') {
    const text = data.toString();
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

// js_body_filter gateway.llmBody buffer_type=buffer;
export function llmBody(r: NginxHTTPRequest, data: Buffer, flags: NginxHTTPSendBufferOptions): void {
  r.sendBuffer(data, flags);
  if (data.length === 0) {
    return;
  }
  try {
    look(r, data);
  } catch (e) {
    // accounting never breaks a response: the tokens stay unknown
  }
}
