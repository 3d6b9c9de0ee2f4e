// gateway.bodyDigest (njs/lib/cache.ts) under Node with request-shaped objects: the cache key
// part of body-keyed caches. Through real nginx: tests/integration/cache-body.test.ts.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bodyDigest, type BodyRequest } from '../../njs/lib/cache.ts';

const req = (get: () => unknown, headersIn: Record<string, string> = {}): BodyRequest => ({
  get requestBuffer() {
    return get() as Buffer | undefined;
  },
  headersIn,
});
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('bodyDigest', () => {
  it('hex SHA-256 of the whole body, byte for byte', () => {
    const body = Buffer.from(JSON.stringify({ messages: ['x'.repeat(20000)], tag: 'é' }));
    expect(bodyDigest(req(() => body))).toBe(sha(body));
    expect(bodyDigest(req(() => body, { 'Content-Length': String(body.length) }))).toBe(sha(body));
    const other = Buffer.from(body);
    other[other.length - 2] ^= 1;
    expect(bodyDigest(req(() => other))).not.toBe(bodyDigest(req(() => body)));
  });
  it('no body or an empty one: the digest of ""', () => {
    expect(bodyDigest(req(() => undefined))).toBe(sha(''));
    expect(bodyDigest(req(() => Buffer.alloc(0)))).toBe(sha(''));
  });
  it('a body nginx does not hold in full: "" (bypass), never the digest of a part', () => {
    const body = Buffer.from('{"messages":["hello"]}');
    expect(bodyDigest(req(() => body.subarray(0, 5), { 'Content-Length': String(body.length) }))).toBe('');
    expect(bodyDigest(req(() => undefined, { 'Content-Length': String(body.length) }))).toBe('');
    expect(bodyDigest(req(() => undefined, { 'Transfer-Encoding': 'chunked' }))).toBe('');
    expect(bodyDigest(req(() => undefined, { 'Content-Length': '0' }))).toBe(sha(''));
    expect(bodyDigest(req(() => body, { 'Transfer-Encoding': 'chunked' }))).toBe(sha(body)); // read and de-chunked by nginx
  });
  it('a body njs cannot read (in a temporary file): "" so the request bypasses the cache', () => {
    expect(
      bodyDigest(
        req(() => {
          throw new Error('request body is in a file');
        }),
      ),
    ).toBe('');
  });
});
