// Route-regex validation against real PCRE2: each pattern is compiled by nginx -t (the
// project runtime) in a `location ~` exactly as gatewayctl renders it, and pcreProblem()
// must agree: null when nginx accepts it, a reason when nginx refuses it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pcreProblem } from '../../src/model/pcre.ts';
import { q } from '../../src/plan/quote.ts';
import { findNginx, preparePrefix, testConfig } from '../../src/runtime/nginx/index.ts';
import { completeRawConf } from '../support/nginx.ts';

export const CORPUS = [
  // valid PCRE2 that JavaScript's RegExp refuses or reads differently
  '(?s)^/a.b', '(?m)^/a$', '(?x) ^/a  b # comment', '(?i)^/A', '(?-i)^/a', '(?i:^/a)', 'a++', 'x*+', '(?>a)b', '\\Qa.b\\E',
  '\\x{41}', '\\pL', '\\p{L}', '\\p{Lu}+', '\\PL', '[[:alpha:]]+', '[[:^digit:]]', '(?P<n>x)(?P=n)', "(?'n'x)\\k'n'", '(?<n>a)\\k{n}',
  '(a)\\g1', '(a)\\g{-1}', '(a)(?1)', '(?R)?', '(?|(a)|(b))\\1', '(?(1)a|b)', '(a)?(?(1)b|c)', '(*UTF)a', '(*CR)a', '\\R', '\\h+',
  '\\N', '\\e', '\\ca', '\\0', '\\012', '\\o{101}', 'a{,3}', '(?#comment)a', '\\A/a\\z', '/a\\Z', '\\Ka', '\\Ga', '[]a]',
  '[^]a]', '(?<=ab)c', '(?<=a|bc)d', '(?<=a{1,200})b', '(?<!x)y', '/a b', '\\/api\\-x', 'x{', '}', 'a]', 'x{a}', '(?=a)*b',
  '^/api/(\\d+)$', '/v1/.*\\.json$', '^/(?<ver>v[0-9]+)/', '\\d{2,4}', '[a-z\\d_-]+', '[\\w.]+', '\\bword\\b', '(?:a|b)+?',
  // refused by PCRE2, although JavaScript (without the u flag) accepts most of them
  '\\u0041', '\\U', '\\l', '\\N{U+41}', '(?<=a+)b', '(?<=a*)b', '(?<=a{1,300})b', '(?<=a{2,})b', '\\x{100}', '\\o{777}',
  '\\8', '(a)\\2', '\\k<x>', '(?P=x)', '(?<n>a)(?<n>b)', '(?<1a>x)', '[[:foo:]]', '[:alpha:]', '\\i', '\\j', '\\y', '\\',
  'a\\', '\\c', 'a{1,70000}', '[]', '[^]', '[', '(', ')', 'a{2,1}', '(?Q)a', '(*FOO)a', '(?<n>a)\\g{m}', '(?&x)', '*a', 'a**',
  '[z-a]',
];

const scratch = mkdtempSync(path.join(os.tmpdir(), 'gatewayctl-pcre-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('route regexes: pcreProblem agrees with nginx -t (PCRE2)', () => {
  it('accepts exactly what nginx accepts', async () => {
    const loc = await findNginx({});
    const prefix = path.join(scratch, 'prefix');
    await preparePrefix(prefix, loc.modulesDir);
    const disagree: string[] = [];
    const queue = CORPUS.map((re, i) => ({ re, i }));
    await Promise.all(
      [0, 1].map(async () => {
        for (let x = queue.shift(); x; x = queue.shift()) {
          const conf = path.join(scratch, `re-${x.i}.conf`);
          writeFileSync(conf, completeRawConf(`error_log stderr;\nevents {}\nhttp {\n  server {\n    listen 127.0.0.1:1;\n    location ~ ${q(x.re, 'regex')} { return 204; }\n  }\n}\n`));
          const res = await testConfig(loc, prefix, conf);
          const ours = pcreProblem(x.re);
          if (res.ok !== (ours === null)) {
            disagree.push(`${JSON.stringify(x.re)}: nginx ${res.ok ? 'accepts' : `refuses (${res.errors[0]?.message})`}, pcreProblem says ${ours ?? 'ok'}`);
          }
        }
      }),
    );
    expect(disagree, disagree.join('\n')).toEqual([]);
  });
});
