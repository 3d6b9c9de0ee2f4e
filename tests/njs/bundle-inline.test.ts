// The bundler's inlined fast paths (src/njs/bundle.ts, inlineFastPath): a handler's fast path
// becomes the body of its own function when that is safe, and stays a nested function when not;
// either way the handler answers as its fast path and full handler do.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assembleNjsModule, bundleNjsParts } from '../../src/njs/bundle.ts';

const LIB = `
const LIMIT = 3;
// inlined: plain parameters, block-scoped locals (one shadows a module name), no functions
export function flat(r: { n: number; log: string[] }): string {
  r.log.push('full');
  return 'full:' + r.n;
}
export function flatFast(r: { n: number; log: string[] }, full: (r: { n: number; log: string[] }) => string): string {
  const LIMIT = 10;
  if (r.n > LIMIT) {
    return full(r);
  }
  let out = 'fast:' + r.n;
  if (r.n > 5) {
    out += '!';
  }
  return out;
}
// a fast path that only hands over to another: that one's body is inlined
export function hand(r: { n: number; log: string[] }): string {
  return 'hand-full:' + r.n;
}
export function handFast(r: { n: number; log: string[] }, full: (r: { n: number; log: string[] }) => string): string {
  return flatFast(r, full);
}
// not inlined: a var would be hoisted beside the module's names
export function hoisted(r: { n: number }): string {
  return 'full:' + r.n;
}
export function hoistedFast(r: { n: number }, full: (r: { n: number }) => string): string {
  // eslint-disable-next-line no-var
  var LIMIT2 = LIMIT;
  return r.n > LIMIT2 ? full(r) : 'fast:' + r.n;
}
// not inlined: it uses arguments
export function args(r: { n: number }, extra?: string): string {
  return 'full:' + r.n + (extra ?? '');
}
export function argsFast(r: { n: number }, full: (r: { n: number }, extra?: string) => string, extra?: string): string {
  return arguments[2] !== undefined ? full(r, extra) : 'fast:' + r.n;
}
`;
const ENTRY = `import { flat, hand, hoisted, args } from './lib.ts';
export default { flat: flat, hand: hand, hoisted: hoisted, args: args };
`;

function load(): { code: string; h: Record<string, (...a: unknown[]) => string> } {
  const dir = mkdtempSync(path.join(tmpdir(), 'gw-inline-'));
  writeFileSync(path.join(dir, 'lib.ts'), LIB);
  writeFileSync(path.join(dir, 'entry.ts'), ENTRY);
  const code = assembleNjsModule(bundleNjsParts(path.join(dir, 'entry.ts'), 'entry.js'), null);
  const h = new Function(code.replace(/export default (\w+);\s*$/, 'return $1;'))() as Record<string, (...a: unknown[]) => string>;
  return { code, h };
}

describe('inlined fast paths', () => {
  const { code, h } = load();

  it('inlines a flat fast path and keeps the nested function where inlining is not safe', () => {
    expect(code).toContain('// handler flat: its fast path (the body of flatFast)');
    expect(code).not.toMatch(/function flatFast\b/);
    expect(code).toContain('// handler hand: its fast path (the body of flatFast)');
    expect(code).not.toMatch(/function handFast\b/);
    expect(code).toMatch(/function hoistedFast\b/);
    expect(code).toMatch(/function argsFast\b/);
  });

  it('answers as the fast path and the full handler do', () => {
    const r = (n: number) => ({ n, log: [] as string[] });
    expect(h.flat(r(2))).toBe('fast:2');
    expect(h.flat(r(7))).toBe('fast:7!');
    const big = r(11);
    expect(h.flat(big)).toBe('full:11');
    expect(big.log).toEqual(['full']);
    expect(h.hand(r(7))).toBe('fast:7!');
    expect(h.hand(r(12))).toBe('hand-full:12');
    expect(h.hoisted({ n: 2 })).toBe('fast:2');
    expect(h.hoisted({ n: 4 })).toBe('full:4');
    expect(h.args({ n: 1 })).toBe('fast:1');
    expect(h.args({ n: 1 }, 'x')).toBe('full:1x');
  });
});
