// njs/lib/base64url.ts in real njs: b64uDecode's round-trip check (decode, encode again, compare)
// accepts exactly the canonical base64url that isBase64Url's regex and bit test define, and
// decodes it to the bytes Node decodes. The round trip relies on what njs's Buffer does with
// text outside the alphabet, padding, a lone last character and unused low bits, so it is
// proven on the engine, not only under Node (tests/njs/jwt.test.ts).
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleNjs, PROJECT_ROOT } from '../../src/njs/bundle.ts';
import { isBase64Url } from '../../njs/lib/base64url.ts';
import { freePort } from '../support/ports.ts';
import { fixture, makePrefix, NJS_MODULE_SO, startNginx, writeFiles, type RunningNginx } from './nginx-helper.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
let nginx: RunningNginx;
let port: number;

beforeAll(async () => {
  port = await freePort();
  const prefix = await makePrefix();
  await bundleNjs(path.join(PROJECT_ROOT, 'tests/njs/fixtures/base64url-entry.ts'), path.join(prefix, 'njs/b64.js'));
  await writeFiles(prefix, {
    'nginx.conf': await fixture('nginx.conf', { NJS_MODULE_SO }),
    'conf.d/b64.conf': `js_path njs/;\njs_import b64 from b64.js;\nserver {\n  listen 127.0.0.1:${port};\n  client_body_buffer_size 1m;\n  client_max_body_size 1m;\n  location / { js_content b64.check; }\n}\n`,
  });
  nginx = await startNginx(prefix, port);
});

afterAll(async () => {
  await nginx?.stop();
});

function corpus(): string[] {
  const out = new Set<string>(['', 'A', 'AA', 'AAA', 'AAAA', 'aGVsbG8', 'aGVsbG8=', 'aGVsbG8==', 'aGVsbG9', 'a+b/', 'a b', 'ab\n', 'é', 'aé', 'QUJD.', '=AAA', 'AA=A', 'A===', '-_8', '-_9']);
  // every canonical encoding of 0..40 bytes, each with every other last character (the
  // non-canonical spellings among them) and with characters from outside the alphabet
  for (let n = 0; n <= 40; n++) {
    const enc = randomBytes(n).toString('base64url');
    out.add(enc);
    if (enc.length === 0) continue;
    for (const c of ALPHABET) out.add(enc.slice(0, -1) + c);
    for (const c of ['=', '+', '/', ' ', '.', '%', '\u00e9', '\u0000']) {
      out.add(enc + c);
      out.add(c + enc);
      out.add(enc.slice(0, enc.length >> 1) + c + enc.slice(enc.length >> 1));
    }
    out.add(enc + 'A'); // one character too many: length % 4 may become 1
    out.add(enc.slice(1));
  }
  return [...out];
}

describe('base64url in real njs', () => {
  it('b64uDecode accepts exactly canonical base64url and decodes it as Node does', async () => {
    const list = corpus();
    const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: JSON.stringify(list) });
    const text = await res.text();
    expect(res.status, `${text}\n${await nginx.errorLog()}`).toBe(200);
    const got = JSON.parse(text) as [string | null, boolean][];
    expect(got.length).toBe(list.length);
    let valid = 0;
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      const canonical = isBase64Url(s);
      if (canonical) valid++;
      expect(got[i][1], `njs isBase64Url(${JSON.stringify(s)})`).toBe(canonical);
      expect(got[i][0], `njs b64uDecode(${JSON.stringify(s)})`).toBe(canonical ? Buffer.from(s, 'base64url').toString('hex') : null);
    }
    // the corpus holds both kinds in number
    expect(valid).toBeGreaterThan(50);
    expect(list.length - valid).toBeGreaterThan(1000);
  });
});
