// base64url (RFC 4648 §5, no padding) helpers shared by the JWT and API-key code.
// Engine-neutral: `Buffer` exists in njs 0.8 and in Node, both accept 'base64url'.
// Decoding is strict: only the URL-safe alphabet, no padding, no impossible lengths, and
// canonical only (RFC 4648 §3.5): the unused low bits of the last character must be zero.
// Decoders ignore those bits, so without this check one signature has up to 16 spellings.
// (njs subset: no classes, destructuring, spread, optional chaining, for-of, Map/Set.)

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

// The definition of canonical base64url, spelled out: the alphabet, no impossible length, the
// unused bits zero. The request path decodes with b64uDecode's round trip instead (cheaper in
// njs); the tests hold the two together on both engines (tests/njs/base64url-nginx.test.ts).
export function isBase64Url(s: string): boolean {
  if (typeof s !== 'string' || s.length % 4 === 1) {
    return false;
  }
  if (!/^[A-Za-z0-9_-]*$/.test(s)) {
    return false;
  }
  const rest = s.length % 4;
  if (rest === 0) {
    return true;
  }
  // 2 characters carry 1 byte (4 unused bits), 3 characters carry 2 bytes (2 unused bits)
  const last = ALPHABET.indexOf(s.charAt(s.length - 1));
  return (last & (rest === 2 ? 15 : 3)) === 0;
}

// Decode to bytes; null when the input is not canonical base64url. The check is a round trip:
// the decoder skips what is not in the alphabet, stops at padding and drops a lone last
// character and unused low bits, and the encoder writes the one canonical spelling of the
// bytes without padding, so the bytes encode back to `s` exactly when `s` is canonical
// base64url (the set isBase64Url defines; tests/njs/base64url-nginx.test.ts holds the two together).
// In an njs request VM, isBase64Url's regex and two string calls cost ~9,500 instructions a
// segment, the second encoding ~1,500.
export function b64uDecode(s: string): Buffer | null {
  if (typeof s !== 'string') {
    return null;
  }
  const b = Buffer.from(s, 'base64url');
  return b.toString('base64url') === s ? b : null;
}

// Decode to a UTF-8 string; null when the input is not canonical base64url.
export function b64uDecodeString(s: string): string | null {
  const b = b64uDecode(s);
  return b === null ? null : b.toString('utf8');
}

export function b64uEncode(data: string | Uint8Array): string {
  if (typeof data === 'string') {
    return Buffer.from(data, 'utf8').toString('base64url');
  }
  return Buffer.from(data).toString('base64url');
}
