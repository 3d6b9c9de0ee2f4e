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

// The role claim: a string is ONE role, an array is a list of roles. Roles travel as one
// comma-separated value ($gw_client_role, matched by the route's role map and forwarded as the
// role identity header), so a string holding a comma would read as several roles there
// ("user,admin" would pass `roles: [admin]`, and an upstream splitting the header would see
// admin too). Such a value cannot be represented: null (the token is refused), exactly as for
// a list element containing a comma. No whitespace splitting either: "user admin" is one role.
export function safeRole(v: unknown): string | null {
  if (typeof v === 'string' && v.indexOf(',') >= 0) {
    return null;
  }
  return safeIdentity(v);
}

// The provider name is the last path segment of the auth location (/_gw_auth/jwt/<name>).
export function providerName(uri: string): string {
  const i = uri.lastIndexOf('/');
  return i < 0 ? uri : uri.substring(i + 1);
}

