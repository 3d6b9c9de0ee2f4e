// Identity values taken from verified credentials, before they become nginx variables
// and upstream request headers. Engine-neutral.

// Identity values end up in upstream request headers: printable ASCII only, bounded.
export function safeIdentity(v: unknown): string | null {
  if (typeof v === 'number' && isFinite(v)) {
    return String(v);
  }
  if (typeof v === 'string') {
    return /^[\x21-\x7e]([\x20-\x7e]{0,254}[\x21-\x7e])?$/.test(v) ? v : null;
  }
  if (Array.isArray(v) && v.length > 0 && v.length <= 32) {
    const out: string[] = [];
    for (let i = 0; i < v.length; i++) {
      const s = safeIdentity(v[i]);
      if (s === null || s.indexOf(',') >= 0) {
        return null;
      }
      out.push(s);
    }
    const joined = out.join(',');
    return joined.length <= 1024 ? joined : null;
  }
  return null;
}

// The provider name is the last path segment of the auth location (/_gw_auth/jwt/<name>).
export function providerName(uri: string): string {
  const i = uri.lastIndexOf('/');
  return i < 0 ? uri : uri.substring(i + 1);
}

