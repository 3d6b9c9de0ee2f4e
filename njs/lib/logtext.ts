// Token-derived strings (a JWT's `kid`, `alg`, exception text) written to nginx's error log.
// nginx writes log messages byte for byte, so a `kid` holding "\r\n2026/01/01 ... [emerg] ..."
// would start a forged line. logText() quotes the value and escapes everything that is not
// printable ASCII, plus `"` and `\`, and caps the length: one log line stays one line, and
// the quotes show where the untrusted part begins and ends. Engine-neutral (njs subset).

export const LOG_TEXT_MAX = 64;

function hex(n: number, width: number): string {
  let h = n.toString(16);
  while (h.length < width) {
    h = '0' + h;
  }
  return h;
}

// `"value"` with \" \\ \xNN (controls, DEL) and \uNNNN (non-ASCII) escapes; at most `max`
// characters of the value (default LOG_TEXT_MAX), then `[+N more]` for the rest.
export function logText(v: unknown, max?: number): string {
  const s = typeof v === 'string' ? v : String(v);
  const limit = typeof max === 'number' && max > 0 ? max : LOG_TEXT_MAX;
  const n = s.length < limit ? s.length : limit;
  let out = '"';
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) {
      out += '\\' + s.charAt(i);
    } else if (c < 0x20 || c === 0x7f) {
      out += '\\x' + hex(c, 2);
    } else if (c > 0x7e) {
      out += '\\u' + hex(c, 4);
    } else {
      out += s.charAt(i);
    }
  }
  out += '"';
  return s.length > n ? out + '[+' + (s.length - n) + ' more]' : out;
}

// Last guard for a whole message (already built from logText() parts): anything that is not
// printable ASCII becomes \xNN / \uNNNN, and the message is capped at `max` characters.
export function logLine(s: string, max: number): string {
  let out = '';
  const n = s.length < max ? s.length : max;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) {
      out += '\\x' + hex(c, 2);
    } else if (c > 0x7e) {
      out += '\\u' + hex(c, 4);
    } else {
      out += s.charAt(i);
    }
  }
  return s.length > n ? out + '[+' + (s.length - n) + ' more]' : out;
}
