// base64url (RFC 4648 §5, no padding) helpers shared by the JWT and API-key code.
// Engine-neutral: `Buffer` exists in njs 0.8 and in Node, both accept 'base64url'.
// Decoding is strict: only the URL-safe alphabet, no padding, no impossible lengths, and
// canonical only (RFC 4648 §3.5): the unused low bits of the last character must be zero.
// Decoders ignore those bits, so without this check one signature has up to 16 spellings.
// (njs subset: no classes, destructuring, spread, optional chaining, for-of, Map/Set.)

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

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

// Decode to bytes; null when the input is not canonical base64url.
export function b64uDecode(s: string): Buffer | null {
  if (!isBase64Url(s)) {
    return null;
  }
  return Buffer.from(s, 'base64url');
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
