// Body-keyed response caches: `js_set $gw_body_sha256 gateway.bodyDigest;` puts a SHA-256
// digest of the request body in proxy_cache_key instead of the body itself (nginx builds the
// key in the proxy_buffer_size buffer, too small for real bodies). The variable is first
// evaluated when the proxy module builds the cache key, after nginx has read the body into
// one memory buffer (the location sets client_body_buffer_size to its max body size and
// client_body_in_single_buffer on). See src/render/cache.ts.
import cr from 'crypto';

// The part of NginxHTTPRequest this needs (kept structural: no njs-types globals here, so
// the module also type-checks next to Node's in unit tests).
export interface BodyRequest {
  readonly requestBuffer?: Buffer;
  readonly headersIn: { [name: string]: string | undefined };
}

// Hex SHA-256 of the body (of "" when there is none). "" when the digest would not stand for
// the whole body: njs cannot read it (written to a temporary file), or what nginx holds is
// not all of it (shorter than Content-Length, or a chunked body not read yet, e.g. if the
// variable were evaluated before the body was read). The location then bypasses the cache
// for this request, so two different bodies never share a key.
export function bodyDigest(r: BodyRequest): string {
  const h = cr.createHash('sha256');
  let length = 0;
  try {
    const body = r.requestBuffer;
    // an empty body comes as a zero-length buffer that njs refuses to read (detached)
    if (body && body.length > 0) {
      length = body.length;
      h.update(body);
    }
  } catch (e) {
    return '';
  }
  const declared = r.headersIn['Content-Length'];
  if (typeof declared === 'string' && declared !== String(length)) {
    return '';
  }
  if (typeof declared !== 'string' && length === 0 && typeof r.headersIn['Transfer-Encoding'] === 'string') {
    return '';
  }
  return h.digest('hex');
}
