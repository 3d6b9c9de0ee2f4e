// The prompt text behind prompt-prefix affinity (njs/lib/keys.ts promptPrefixText, hashed by
// njs/lib/prefix.ts in nginx and by src/routing/explain.ts for `gatewayctl route`; the two are
// compared through real nginx in tests/routing/models-nginx.test.ts).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { promptPrefixText } from '../../njs/lib/keys.ts';
import { promptPrefixDigest } from '../../src/routing/explain.ts';

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

describe('promptPrefixText', () => {
  it('reads chat messages as role and text, text parts joined, other parts and non-objects skipped', () => {
    const doc = { messages: [{ role: 'system', content: 'Be brief.' }, 'junk', { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url', image_url: {} }, { type: 'text', text: 'b' }] }] };
    expect(promptPrefixText(doc, 1000)).toBe('system\nBe brief.\n\nuser\nab\n\n');
  });
  it('stops at the character limit, and reads a completions prompt when there are no messages', () => {
    expect(promptPrefixText({ messages: [{ role: 'user', content: 'x'.repeat(100) }] }, 10)).toBe('user\nxxxxx');
    expect(promptPrefixText({ prompt: 'Once upon a time' }, 4)).toBe('Once');
    expect(promptPrefixText({ prompt: 42 }, 4)).toBe('');
    expect(promptPrefixText({}, 4)).toBe('');
    expect(promptPrefixText(null, 4)).toBe('');
  });
});

describe('promptPrefixDigest', () => {
  it('hashes the first N UTF-8 bytes (a multi-byte character may be cut)', () => {
    const doc = { messages: [{ role: 'user', content: 'ünï🚀 tail that is not hashed' }] };
    expect(promptPrefixDigest(doc, 9)).toBe(sha1(Buffer.from('user\nünï🚀', 'utf8').subarray(0, 9)));
    expect(promptPrefixDigest(doc, 9)).not.toBe(promptPrefixDigest(doc, 10));
    expect(promptPrefixDigest({ messages: [] }, 9)).toBe('');
  });
});
