// Hash keys as njs derives them (engine-neutral: also used by `gatewayctl route`, so the CLI
// reads a body exactly as the gateway does). njs subset: no classes, spread, optional chaining.
import { b64uDecodeString } from './base64url.ts';
import { hasOwn, parseObject } from './json.ts';

export { parseObject };

// Keys longer than this are ignored (fallback): they come from the client.
export const MAX_KEY_LENGTH = 512;

// A member as a hash key: strings as they are, finite numbers and booleans as text,
// anything else (objects, arrays, null, missing, over-long) as "" (the fallback).
export function keyOf(doc: { [k: string]: unknown } | null, name: string): string {
  if (doc === null || !hasOwn(doc, name)) {
    return '';
  }
  const v = doc[name];
  let s = '';
  if (typeof v === 'string') {
    s = v;
  } else if ((typeof v === 'number' && isFinite(v)) || typeof v === 'boolean') {
    s = String(v);
  }
  return s.length <= MAX_KEY_LENGTH ? s : '';
}

// The claim named in spec "claim:<name>" from a base64url JSON payload segment.
export function claimKeyFrom(spec: string | undefined, claims: string | undefined): string {
  if (typeof spec !== 'string' || spec.indexOf('claim:') !== 0 || typeof claims !== 'string' || claims.length === 0) {
    return '';
  }
  const json = b64uDecodeString(claims);
  return keyOf(parseObject(json), spec.substring(6));
}

// The start of a request's prompt as text, for prompt-prefix affinity: chat `messages` as
// "<role>\n<text>\n\n" each (text: a string content, or the `text` of its text parts), else a
// completions `prompt` string; "" when there is neither. Stops once it holds `chars`
// characters (a character is at least one UTF-8 byte, so the first `chars` bytes are in it):
// the caller hashes its first bytes. Engine-neutral: `gatewayctl route` derives the same key.
export function promptPrefixText(doc: { [k: string]: unknown } | null, chars: number): string {
  if (doc === null) {
    return '';
  }
  const messages = doc.messages;
  if (!Array.isArray(messages)) {
    return typeof doc.prompt === 'string' ? doc.prompt.substring(0, chars) : '';
  }
  let out = '';
  for (let i = 0; i < messages.length && out.length < chars; i++) {
    const m = messages[i];
    if (m === null || typeof m !== 'object') {
      continue;
    }
    const role = typeof m.role === 'string' ? m.role : '';
    out += role + '\n' + messageText(m.content) + '\n\n';
  }
  return out.substring(0, chars);
}

function messageText(content: unknown): string {
  if (typeof content === 'string') {
    return content;
  }
  if (!Array.isArray(content)) {
    return '';
  }
  let s = '';
  for (let i = 0; i < content.length; i++) {
    const part = content[i];
    if (part !== null && typeof part === 'object' && typeof part.text === 'string') {
      s += part.text;
    }
  }
  return s;
}

// OpenAI-style error body.
export function openAiError(message: string, type: string, code: string, param: string | null): string {
  return JSON.stringify({ error: { message: message, type: type, param: param, code: code } });
}
