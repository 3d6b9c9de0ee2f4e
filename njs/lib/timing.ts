// Constant-time comparison of two strings (MAC values, hashes). The running time depends
// only on the length of `b` (the attacker-controlled side is `a`), never on where the
// first difference is. A length mismatch still walks all of `b` before failing.

export function timingSafeEqual(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') {
    return false;
  }
  let diff = a.length === b.length ? 0 : 1;
  for (let i = 0; i < b.length; i++) {
    const ca = i < a.length ? a.charCodeAt(i) : 0;
    diff |= ca ^ b.charCodeAt(i);
  }
  return diff === 0;
}
