// The fast reader of gateway.yaml's plain layout (src/config/fast-yaml.ts) against the yaml
// package: for every example and golden config, the scale fixture, seeded mutations of them
// and hand-written edge cases, loading through parseFile (fast reader when it accepts the
// text) gives the same value, the same positions of every key and value and the same
// diagnostics as parseFileYaml (the yaml package only).
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fastParse } from '../../src/config/fast-yaml.ts';
import { parseFile, parseFileYaml } from '../../src/config/load.ts';
import { mutate, rng } from '../fuzz/mutate.ts';
import { scaleConfig } from '../../scripts/scale-fixtures.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ENV = { GOLDEN_UPSTREAM_HOST: '10.9.8.7', N: '8080', T: 'true', E: '' };

const configs: [string, string][] = ['examples', 'tests/golden', 'tests/golden-k8s'].flatMap((base) =>
  existsSync(path.join(ROOT, base))
    ? readdirSync(path.join(ROOT, base))
        .filter((d) => existsSync(path.join(ROOT, base, d, 'gateway.yaml')))
        .sort()
        .map((d): [string, string] => [`${base}/${d}`, readFileSync(path.join(ROOT, base, d, 'gateway.yaml'), 'utf8')])
    : [],
);
const scale = scaleConfig({ routes: 300, upstreams: 60, port: 18080, apiKeys: true });

const same = (text: string) => {
  const a = parseFile('gateway.yaml', text, ENV);
  const b = parseFileYaml('gateway.yaml', text, ENV);
  expect(a.value).toEqual(b.value);
  expect([...a.positions.value]).toEqual([...b.positions.value]);
  expect([...a.positions.key]).toEqual([...b.positions.key]);
  expect(a.diagnostics).toEqual(b.diagnostics);
};

describe('fast reader agrees with the yaml package', () => {
  it('reads the plain layout itself (the scale fixture, most examples)', () => {
    expect(fastParse(scale)).not.toBeNull();
    const read = configs.filter(([, t]) => fastParse(t) !== null).length;
    expect(read).toBeGreaterThan(configs.length / 2);
  });

  it.each(configs)('%s', (_, text) => same(text));

  it('the scale fixture', () => same(scale));

  it('seeded mutations of every config', () => {
    let accepted = 0;
    for (const [i, [, text]] of configs.entries()) {
      for (let k = 0; k < 8; k++) {
        const m = mutate(text, i * 1_000 + k).text;
        if (fastParse(m)) accepted++;
        same(m);
      }
    }
    expect(accepted).toBeGreaterThan(0);
  });

  it('seeded character edits of every config (deleted, inserted, replaced indicators)', () => {
    const CH = [' ', ':', '-', '#', "'", '"', '{', '}', '[', ']', ',', '\n', 'a', '1', '.', '&', '*', '!', '|', '>', '?', '%', '@', '`', '0', 'e', '~', '$', '\\'];
    let accepted = 0;
    for (let s = 0; s < 3000; s++) {
      const r = rng(s + 7);
      let t = configs[s % configs.length][1];
      for (let k = 1 + Math.floor(r() * 6); k > 0; k--) {
        const p = Math.floor(r() * t.length);
        const op = r();
        const c = CH[Math.floor(r() * CH.length)];
        t = op < 0.33 ? t.slice(0, p) + t.slice(p + 1) : op < 0.66 ? t.slice(0, p) + c + t.slice(p) : t.slice(0, p) + c + t.slice(p + 1);
      }
      if (!fastParse(t)) continue;
      accepted++;
      same(t);
    }
    expect(accepted).toBeGreaterThan(100);
  });

  const EDGE = [
    'a: 1\nb: 0\nc: 007\nd: -1\ne: +1\nf: 1.5\ng: 1e3\nh: .inf\ni: 0x1f\nj: 0o17\nk: 123456789012345678\n',
    'a: true\nb: False\nc: TRUE\nd: yes\ne: ~\nf: null\ng: Null\nh: NULL\ni: nil\n',
    'a: ${N}\nb: "${N}"\nc: ${T}\nd: $${N}\ne: x-${N:-7}\nf: ${E:-}\ng: \'${N}\'\nh: ${MISSING}\n',
    "a: 'it''s'\nb: \"q # not a comment\"\nc: plain # comment\nd: a#b\ne: 'x' # c\nf: \"a\\tb\"\n",
    'a: [1, two, "3", \'4\', { x: y }, [], {}]\nb: { k: v, n: 1, m: [a, b] }\nc: [a b, c d ]\n',
    'a: [1, 2,]\n', 'a: { k: v, }\n', 'a: [1, 2\n', 'a: { k: v\nb: 1\n', 'a: {k:v}\n', 'a: [k: v]\n',
    'a:\n  - x\n  - y: 1\n    z: 2\n  - - nested\nb:\n- same indent\n- 2\n',
    'a:\n  b:\n    c: 1\n  d: 2\ne: 3\n',
    'a: 1\na: 2\nb:\n  c: 1\n  c: 2\n',
    'a: &x 1\nb: *x\n', 'a: !!str 1\n', 'a: |\n  text\n', 'a: >\n  text\n',
    'a: multi\n  line\n', 'a:\nb: 1\n', 'a:\n  # only a comment\nb: 1\n', '- a\n- b\n', 'just a scalar\n', '',
    '# comment\n\na: 1 # c\n\n# end\n', '---\na: 1\n', 'a: 1\n...\n', '%YAML 1.2\n---\na: 1\n',
    'a:\tb\n', 'a: 1\r\nb: 2\r\n', '\ufeffa: 1\n', 'a: é\n', 'a: "é"\n',
    'a: b: c\n', '- a: b: c\n', 'a:  two  spaces  \n', 'a: x:y\nb: http://h:80/p?q=1&r=2\n',
    'a: -x\nb: -\nc: - x\n', 'a: { b: -, c: 1 }\n', 'a: [-, 1]\n', 'a: [x, -]\n', 'a: { b: -1x }\n', 'a: ?x\nb: x?\n', '? a\n: b\n', '"a": 1\n', "'a': 1\n", '1: x\ntrue: y\nnull: z\n',
    'a:\n  - x\n   - y\n', 'a:\n    b: 1\n  c: 2\n', 'a: 1\n  b: 2\n', 'a: [x]\n  - y\n', 'a:\n- x\n  b: 1\n',
    `a: ${'x'.repeat(70_000)}\n`, `${'k'.repeat(300)}: 1\n`, `a:\n  ${'k'.repeat(1100)}: 1\n`,
    'a: "unterminated\n', "a: 'unterminated\n", 'a: "x" y\n', 'a: [x] y\n', 'a: { x: }\n', 'a: [ , ]\n',
    'a: { x: [1, { y: z }] }\nb: [ { n: 1 }, { n: 2 } ]\n', 'a: x #\nb: y#\n', 'a: x  # two spaces\n',
    'routes:\n  - name: r1\n    match: { prefix: /r1/ }\n    upstream: u1\n  - name: r2\n    match: { exact: /v1/r2, methods: [POST] }\n',
  ];
  it.each(EDGE.map((t) => [JSON.stringify(t).slice(0, 60), t]))('edge case %s', (_, text) => same(text));
});
