// Token usage of OpenAI-compatible responses, read from text as it passes by: a pure module
// (no nginx objects) shared by the metrics body filter (njs/lib/llm.ts) and anything else that
// accounts for tokens. It never needs the whole body:
//   - non-streamed JSON: `{"id":…,"choices":[…],"usage":{"prompt_tokens":9,"completion_tokens":12,…}}`
//   - SSE streams (`stream_options: {include_usage: true}`): every chunk carries `"usage":null`
//     except the last one before `data: [DONE]`, which carries the object;
//   - the Responses API (`"usage":{"input_tokens":…,"output_tokens":…}`, also inside the
//     `response.completed` event of a stream).
// `"usage"` with its quotes cannot occur inside a JSON string (quotes are escaped there), so a
// plain search finds only the key. The scanner keeps a bounded carry between chunks: from the
// last `"usage"` whose object is not complete yet, else the few bytes a split key could start
// with.

export interface Usage {
  input: number; // prompt_tokens / input_tokens
  output: number; // completion_tokens / output_tokens
}

/** the longest carry kept between chunks: a usage object larger than this is not read */
export const USAGE_WINDOW = 4096;

const KEY = '"usage"';

function isCount(x: unknown): boolean {
  return typeof x === 'number' && x >= 0 && x === Math.floor(x) && x < 1e15;
}

/** The token counts of a parsed `usage` object, or null when it has none. */
export function usageOf(u: unknown): Usage | null {
  if (u === null || typeof u !== 'object') {
    return null;
  }
  const o = u as { [k: string]: unknown };
  if (isCount(o.prompt_tokens) && isCount(o.completion_tokens)) {
    return { input: o.prompt_tokens as number, output: o.completion_tokens as number };
  }
  if (isCount(o.input_tokens) && isCount(o.output_tokens)) {
    return { input: o.input_tokens as number, output: o.output_tokens as number };
  }
  return null;
}

function skipSpace(t: string, i: number): number {
  while (i < t.length) {
    const c = t.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) {
      break;
    }
    i++;
  }
  return i;
}

// the end (exclusive) of the JSON object starting at t[i] === '{', or -1 when t ends first
function objectEnd(t: string, i: number): number {
  let depth = 0;
  let inString = false;
  for (let j = i; j < t.length; j++) {
    const c = t.charCodeAt(j);
    if (inString) {
      if (c === 92) {
        j++; // backslash: skip the escaped character
      } else if (c === 34) {
        inString = false;
      }
    } else if (c === 34) {
      inString = true;
    } else if (c === 123) {
      depth++;
    } else if (c === 125) {
      depth--;
      if (depth === 0) {
        return j + 1;
      }
    }
  }
  return -1;
}

/**
 * The value of the `"usage"` key starting at t[i]:
 *   { done: true, usage }        the value is complete (usage null: `null` or no counts in it)
 *   { done: false, usage: null } the text ends before the value does
 */
export function usageAt(t: string, i: number): { done: boolean; usage: Usage | null } {
  let j = skipSpace(t, i + KEY.length);
  if (j >= t.length) {
    return { done: false, usage: null };
  }
  if (t.charCodeAt(j) !== 58) {
    return { done: true, usage: null }; // not a key after all
  }
  j = skipSpace(t, j + 1);
  if (j >= t.length) {
    return { done: false, usage: null };
  }
  if (t.charCodeAt(j) !== 123) {
    // null (or another non-object): complete once the literal is
    return { done: j + 4 <= t.length, usage: null };
  }
  const end = objectEnd(t, j);
  if (end < 0) {
    return { done: false, usage: null };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(t.substring(j, end));
  } catch (e) {
    return { done: true, usage: null };
  }
  return { done: true, usage: usageOf(parsed) };
}

export interface UsageScan {
  /** the text kept for the next chunk (at most USAGE_WINDOW characters) */
  carry: string;
  /** the last complete usage object with counts seen so far, or null */
  usage: Usage | null;
}

/**
 * Feed the next piece of a response body. `carry` is what the previous call returned (""
 * at first). A later usage object replaces an earlier one; `"usage":null` never erases one.
 */
export function scanUsage(carry: string, chunk: string, seen: Usage | null): UsageScan {
  const t = carry + chunk;
  let usage = seen;
  let from = 0;
  let pending = -1;
  for (;;) {
    const i = t.indexOf(KEY, from);
    if (i < 0) {
      break;
    }
    const at = usageAt(t, i);
    if (!at.done) {
      pending = i;
      break;
    }
    if (at.usage !== null) {
      usage = at.usage;
    }
    from = i + KEY.length;
  }
  let next: string;
  if (pending >= 0) {
    next = t.length - pending > USAGE_WINDOW ? '' : t.substring(pending);
  } else {
    // a key split across chunks: keep what could be its beginning; none can end in white
    // space (an SSE event's closing blank line), so then nothing is kept, and the body
    // filter's fast path (llmBodyFast) takes the next chunk
    const last = t.length === 0 ? 32 : t.charCodeAt(t.length - 1);
    if (last === 10 || last === 32 || last === 13 || last === 9) {
      next = '';
    } else {
      next = t.length > KEY.length - 1 ? t.substring(t.length - (KEY.length - 1)) : t;
    }
  }
  return { carry: next, usage: usage };
}

/** The whole-body convenience: the last usage object of a complete response text (JSON or SSE). */
export function usageOfText(text: string): Usage | null {
  return scanUsage('', text, null).usage;
}

/**
 * The string value of the first `"<name>"` key in t (e.g. "model" in the first chunk of a
 * response), or "" when there is none or it is not complete in t.
 */
export function stringField(t: string, name: string): string {
  const key = '"' + name + '"';
  const i = t.indexOf(key);
  if (i < 0) {
    return '';
  }
  let j = skipSpace(t, i + key.length);
  if (t.charCodeAt(j) !== 58) {
    return '';
  }
  j = skipSpace(t, j + 1);
  if (t.charCodeAt(j) !== 34) {
    return '';
  }
  const end = t.indexOf('"', j + 1);
  if (end < 0) {
    return '';
  }
  const v = t.substring(j + 1, end);
  return v.indexOf('\\') >= 0 ? '' : v;
}
