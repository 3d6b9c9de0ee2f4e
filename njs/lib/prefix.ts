/// <reference path="../../node_modules/njs-types/ngx_http_js_module.d.ts" />
// Prompt-prefix affinity: the hash key is the SHA-1 (hex) of the first N UTF-8 bytes of the
// prompt text (keys.ts promptPrefixText), so requests that share a system prompt and the start
// of a conversation land on the same server and reuse its prefix cache. src/routing/explain.ts
// derives the same key with Node's crypto for `gatewayctl route`.
import cr from 'crypto';
import { promptPrefixText } from './keys.ts';

export function promptPrefixKey(doc: { [k: string]: unknown } | null, bytes: number): string {
  const text = promptPrefixText(doc, bytes);
  if (text.length === 0) {
    return '';
  }
  return cr.createHash('sha1').update(Buffer.from(text).subarray(0, bytes)).digest('hex');
}
