// The token-usage reader (njs/lib/usage.ts) on its own: whole bodies and bodies cut into
// chunks at every position give the same usage; `"usage":null` never erases a usage; a key
// inside a string is not a key; the carry stays bounded.
import { describe, expect, it } from 'vitest';
import { scanUsage, stringField, USAGE_WINDOW, usageOf, usageOfText, type Usage } from '../../njs/lib/usage.ts';

const chat = JSON.stringify({
  id: 'c1',
  object: 'chat.completion',
  model: 'gpt-4o',
  choices: [{ index: 0, message: { role: 'assistant', content: 'he said "usage": {"prompt_tokens": 999, "completion_tokens": 999}' } }],
  usage: { prompt_tokens: 12, completion_tokens: 34, total_tokens: 46, completion_tokens_details: { reasoning_tokens: 0 } },
  system_fingerprint: 'fp',
});

const sse = [
  ...[0, 1, 2].map((i) => `data: ${JSON.stringify({ id: 's', model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content: `w${i}` } }], usage: null })}\n\n`),
  `data: ${JSON.stringify({ id: 's', model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 } })}\n\n`,
  'data: [DONE]\n\n',
].join('');

/** feed `text` in pieces of `size` characters, as the body filter sees it */
function chunked(text: string, size: number): Usage | null {
  let carry = '';
  let usage: Usage | null = null;
  for (let i = 0; i < text.length; i += size) {
    const s = scanUsage(carry, text.slice(i, i + size), usage);
    expect(s.carry.length).toBeLessThanOrEqual(USAGE_WINDOW);
    carry = s.carry;
    usage = s.usage;
  }
  return usage;
}

describe('usage reader', () => {
  it('reads a non-streamed chat completion, not the text inside its content', () => {
    expect(usageOfText(chat)).toEqual({ input: 12, output: 34 });
  });

  it('reads the final chunk of an SSE stream; the null usages before it change nothing', () => {
    expect(usageOfText(sse)).toEqual({ input: 7, output: 3 });
    const cut = sse.slice(0, sse.indexOf('"usage":{'));
    expect(usageOfText(cut)).toBeNull(); // a stream cut before its usage chunk: unknown
  });

  it('gives the same answer for every way of cutting the body into chunks', () => {
    for (const size of [1, 2, 3, 5, 7, 11, 64, 1000]) {
      expect(chunked(chat, size), `chunks of ${size}`).toEqual({ input: 12, output: 34 });
      expect(chunked(sse, size), `chunks of ${size}`).toEqual({ input: 7, output: 3 });
    }
  });

  it('reads the Responses API shape and whitespace around the key', () => {
    expect(usageOfText('{"usage" :\n { "input_tokens": 5, "output_tokens": 6 }}')).toEqual({ input: 5, output: 6 });
    expect(usageOf({ prompt_tokens: 1.5, completion_tokens: 2 })).toBeNull();
    expect(usageOf({ prompt_tokens: -1, completion_tokens: 2 })).toBeNull();
    expect(usageOf(null)).toBeNull();
  });

  it('keeps no more than the window when a usage object never ends', () => {
    const s = scanUsage('', '{"usage":{"prompt_tokens":1,' + ' '.repeat(USAGE_WINDOW + 10), null);
    expect(s.carry).toBe('');
    expect(s.usage).toBeNull();
  });

  it('finds a string field such as the model', () => {
    expect(stringField(sse, 'model')).toBe('gpt-4o-mini');
    expect(stringField('{"model" : "x-1"}', 'model')).toBe('x-1');
    expect(stringField('{"model":"esc\\"aped"}', 'model')).toBe('');
    expect(stringField('{"id":1}', 'model')).toBe('');
  });
});
