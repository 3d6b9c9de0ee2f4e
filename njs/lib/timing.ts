// Constant-time comparison of a presented value with the expected one (MAC values).
//
// The strings themselves are never compared: `a` and `b` are each hashed (SHA-256) behind the
// expected value `b`, and only the two digests are compared with `===`. A string comparison
// may stop at the first differing byte, so its time can say how much of a guess matches; here
// it can only say how much of two digests match, digests of inputs that begin with the
// expected MAC, which the one presenting `a` does not know and so cannot steer or predict. The
// digests are equal exactly when `a === b` (SHA-256 collision resistance), and the time spent
// depends on the lengths alone.
//
// Why digests rather than a loop over the characters (`diff |= a.charCodeAt(i) ^ ...`): in an
// njs request VM each `charCodeAt` is a native call of ~1,000 instructions, and the loop over a
// 43-character HS256 signature cost 137,000 instructions, a third of a first-sight HS256
// verification; the two SHA-256 digests cost ~26,000 (docs/njs-auth.md). This is the
// double-HMAC comparison (keyed hashes of both sides, then an ordinary compare), keyed by the
// expected value itself.
import cr from 'crypto';

export function timingSafeEqual(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') {
    return false;
  }
  const key = b + '\n';
  return cr.createHash('sha256').update(key + a).digest('base64url') === cr.createHash('sha256').update(key + b).digest('base64url');
}
