// The njs-subset lint and the bundle checks.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import ts from 'typescript';
import { assembleNjsModule, bundleNjs, bundleNjsParts, bundleNjsText, lintNjs, lintNjsSource, listNjsSources, NJS_ENTRY, runNjsLint, verifyNjsBundle } from '../../src/njs/bundle.ts';

function constructs(src: string): string[] {
  return lintNjsSource('x.ts', src).map((p) => p.construct);
}

describe('lintNjsSource', () => {
  const cases: [string, string, string][] = [
    ['class declaration', 'function f() { class A {} }', 'classes'],
    ['class expression', 'function f() { return class {}; }', 'classes'],
    ['object destructuring', 'function f(o: any) { const { a } = o; return a; }', 'destructuring'],
    ['array destructuring', 'function f(o: any) { const [a] = o; return a; }', 'destructuring'],
    ['destructuring parameter', 'function f({ a }: any) { return a; }', 'destructuring'],
    ['destructuring assignment', 'function f(o: any) { let a; [a] = o; return a; }', 'destructuring assignment'],
    ['call spread', 'function f(a: number[]) { return Math.max(...a); }', 'spread'],
    ['array spread', 'function f(a: number[]) { return [...a]; }', 'spread'],
    ['object spread', 'function f(a: object) { return { ...a }; }', 'object spread'],
    ['rest parameter', 'function f(...a: number[]) { return a; }', 'rest parameters'],
    ['optional property access', 'function f(a: any) { return a?.b; }', 'optional chaining'],
    ['optional call', 'function f(a: any) { return a.b?.(); }', 'optional chaining'],
    ['optional element access', 'function f(a: any) { return a?.[0]; }', 'optional chaining'],
    ['default parameter', 'function f(a = 1) { return a; }', 'default parameters'],
    ['default arrow parameter', 'function f() { return (a = 1) => a; }', 'default parameters'],
    ['for-of', 'function f(a: number[]) { for (const x of a) { return x; } }', 'for-of'],
    ['generator', 'function* f() { yield 1; }', 'generators'],
    ['new Map', 'function f() { return new Map(); }', 'new Map'],
    ['new Set', 'function f() { return new Set(); }', 'new Set'],
    ['Map reference', 'function f(x: any) { return x instanceof Map; }', 'Map'],
    ['WeakMap', 'function f() { return new WeakMap(); }', 'new WeakMap'],
    ['Proxy', 'function f() { return new Proxy({}, {}); }', 'new Proxy'],
    ['Reflect', 'function f(o: object) { return Reflect.ownKeys(o); }', 'Reflect'],
    ['optional catch binding', 'function f() { try { f(); } catch { return 1; } }', 'optional catch binding (write `catch (e)`)'],
    ['??=', 'function f(a: any) { a.b ??= 1; }', 'logical assignment ??='],
    ['||=', 'function f(a: any) { a.b ||= 1; }', 'logical assignment ||='],
    ['&&=', 'function f(a: any) { a.b &&= 1; }', 'logical assignment &&='],
    ['BigInt literal', 'function f() { return 10n; }', 'BigInt literals'],
    ['tagged template', 'function f() { return String.raw`a`; }', 'tagged templates'],
    ['Array.prototype.flat', 'function f(a: number[][]) { return a.flat(); }', 'the flat() method'],
    ['Array.prototype.at', 'function f(a: number[]) { return a.at(-1); }', 'the at() method'],
    ['Object.fromEntries', 'function f(a: [string, number][]) { return Object.fromEntries(a); }', 'the fromEntries() method'],
  ];
  for (const [what, src, construct] of cases) {
    it(`flags ${what}`, () => {
      expect(constructs(src)).toContain(construct);
    });
  }

  it('reports file:line:col', () => {
    const p = lintNjsSource('njs/x.ts', 'function f(o: any) {\n  return o?.a;\n}\n');
    expect(p).toEqual([{ file: 'njs/x.ts', line: 2, col: 10, construct: 'optional chaining' }]);
  });

  it('flags top-level code that would run on every request', () => {
    const top = 'top-level code other than imports, functions, simple const literals and export default (it runs on every request)';
    expect(constructs('const table = build();\nfunction build() { return 1; }')).toEqual([top]);
    expect(constructs('let x = 1;')).toEqual([top]);
    expect(constructs('const t = { a: 1 };')).toEqual([top]);
    expect(constructs('console.log(1);')).toEqual([top]);
    expect(constructs('for (let i = 0; i < 3; i++) {}')).toEqual([top]);
    expect(constructs('export default make();\nfunction make() { return {}; }')).toEqual(['a computed export default (export a literal object of handlers)']);
  });

  it('allows imports, functions, simple const literals, types, declare and export default', () => {
    const src = [
      "import cr from 'crypto';",
      "import { x } from './y.ts';",
      "const NAME = 'gw';",
      'const LIMIT = -5;',
      'const RE = /^a+$/;',
      'export const MAX = 10;',
      'interface A { Map: number }',
      'type B = string;',
      'declare const gw_auth: unknown;',
      'export function f(o: { Set: number }) { return o.Set + x + cr.createHash; }',
      'export default { f: f, g: function () { return 1; }, h: () => 2 };',
    ].join('\n');
    expect(lintNjsSource('ok.ts', src)).toEqual([]);
  });

  it('passes the real njs sources', async () => {
    const files = await listNjsSources();
    expect(files.map((f) => path.basename(f))).toEqual(expect.arrayContaining(['gateway.ts', 'jwt.ts', 'apikey.ts', 'base64url.ts', 'timing.ts']));
    expect(await lintNjs(files)).toEqual([]);
  });

  it('runNjsLint returns 0 for the project sources', async () => {
    const out: string[] = [];
    const w = process.stdout.write;
    process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write;
    try {
      expect(await runNjsLint()).toBe(0);
    } finally {
      process.stdout.write = w;
    }
    expect(out.join('')).toMatch(/OK/);
  });
});

describe('bundleNjs', () => {
  it('produces one njs module ending in export default, with builtins kept as imports', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gw-bundle-'));
    try {
      const out = path.join(dir, 'njs/gateway.js');
      const res = await bundleNjs(NJS_ENTRY, out);
      const code = await readFile(out, 'utf8');
      expect(res.bytes).toBe(Buffer.byteLength(code));
      expect(code).toMatch(/export default gateway_default;\n$/);
      expect(code).toMatch(/^import \w+ from "crypto";$/m);
      // no CommonJS require (nor esbuild's shim for one): the one require is njs's own, of fs,
      // where the metrics counting log is read (njs/lib/metrics.ts files(): an import would be
      // bound in every request VM)
      expect(code).not.toMatch(/(?<!globalThis\.)\brequire\(|\bclass\b|\?\.|\.\.\./);
      expect([...new Set(code.match(/globalThis\.require\("[a-z]+"\)/g))]).toEqual(['globalThis.require("fs")']);
      expect(verifyNjsBundle(out, code)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('has one top-level function per handler, each holding its own code, and exports only the handlers asked for', () => {
    // njs runs the module's top-level code in every request's VM clone: each top-level
    // function and each exported property costs every request that calls any handler
    // (scripts/bench/instructions.ts), so a handler's helpers are created only inside it
    const all = ['apiKey', 'jwt', 'jwtCached', 'jwtSync', 'route', 'bodyDigest', 'metricsLog', 'metricsBreakerLog', 'metricsExport', 'llmBody', 'steerPeer', 'healthLog', 'healthPeriodic', 'healthAnswer'];
    const parts = bundleNjsParts(NJS_ENTRY, 'njs/gateway.js');
    expect(parts.handlers.map((h) => h.name)).toEqual(expect.arrayContaining(all));
    const code = assembleNjsModule(parts, null);
    const sf = ts.createSourceFile('gateway.js', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
    const topFunctions = sf.statements.filter(ts.isFunctionDeclaration).map((f) => f.name!.text);
    // a handler with a fast path (njs/lib/handlers.ts, apiKeyFast...) holds a second function, its
    // full handler: declared inside it, so a request VM that never calls the handler creates neither
    const fast = ['apiKey', 'jwtCached', 'jwtSync', 'route', 'metricsLog', 'metricsBreakerLog', 'llmBody', 'steerPeer'];
    expect(topFunctions.sort()).toEqual(parts.handlers.map((h) => `gw_${h.name}`).sort());
    for (const h of all) expect(code).toMatch(new RegExp(`^ {2}${h}: gw_${h}[,\\n]`, 'm'));
    const fn = (h: string): ts.FunctionDeclaration => {
      const top = (name: string) => sf.statements.find((s): s is ts.FunctionDeclaration => ts.isFunctionDeclaration(s) && s.name!.text === name);
      const full = /^(.*)_full$/.exec(h);
      if (!full) return top(`gw_${h}`)!;
      return top(`gw_${full[1]}`)!.body!.statements.find((s): s is ts.FunctionDeclaration => ts.isFunctionDeclaration(s) && s.name!.text === `gw_${h}`)!;
    };
    const inner = (h: string) => fn(h).body!.statements.filter(ts.isFunctionDeclaration).map((x) => x.name!.text).filter((n) => !/^gw_.*_full$/.test(n));
    for (const h of fast) expect(fn(`${h}_full`), `gw_${h}_full inside gw_${h}`).toBeDefined();
    // the fast path holds no helper: the full handler's dozens are created only when it runs; and
    // its body is the handler's own (no nested fast function to create and call)
    expect(inner('apiKey')).toEqual([]);
    expect(inner('jwtCached')).toEqual([]);
    expect(inner('route')).toEqual([]);
    expect(inner('jwtSync')).toEqual([]); // jwtSyncFast hands over to jwtCachedFast, whose body is inlined
    for (const h of ['apiKey', 'jwtCached', 'route', 'metricsLog', 'llmBody']) expect(code, h).toContain(`// handler ${h}: its fast path (the body of ${h}Fast)`);
    expect(code).toContain('// handler jwtSync: its fast path (the body of jwtCachedFast)');
    expect(inner('apiKey_full')).toContain('hashApiKey');
    expect(inner('jwtSync_full')).toContain('verifyJwtSync');
    // the log-phase call of a plain request creates one helper (the default buckets), and none
    // of the series budget's or the breakers' functions
    expect(inner('metricsLog')).toEqual(['defaultBucket']);
    expect(inner('metricsLog_full')).toContain('admitRequestKey');
    expect(inner('metricsLog_full')).not.toContain('healthRecord');
    expect(inner('metricsBreakerLog_full')).toContain('healthRecord');
    // a request that did not fail creates none of the breaker's functions either
    expect(inner('metricsBreakerLog').sort()).toEqual(['defaultBucket', 'metricsLogFast']);
    expect(inner('apiKey_full')).not.toContain('verifyJwtSync');
    expect(inner('jwt')).toContain('verifyJwt');
    expect(inner('route_full')).not.toContain('verifyJwt');
    expect(inner('bodyDigest')).not.toContain('verifyJwtSync');
    // an API-key-only build: one function, one export, crypto imported once
    const keyOnly = assembleNjsModule(parts, ['apiKey']);
    expect(verifyNjsBundle('gateway.js', keyOnly)).toEqual([]);
    const ko = ts.createSourceFile('k.js', keyOnly, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
    expect(ko.statements.filter(ts.isFunctionDeclaration).map((f) => f.name!.text)).toEqual(['gw_apiKey']);
    expect(keyOnly).toMatch(/var gateway_default = \{\n {2}apiKey: gw_apiKey\n\};/);
    expect(keyOnly.match(/^import /gm)).toHaveLength(1);
    expect(bundleNjsText(NJS_ENTRY, 'njs/gateway.js')).toBe(code);
    expect(() => assembleNjsModule(parts, ['apiKey', 'nope'])).toThrow(/not in the bundle: nope/);
  });

  it('verifyNjsBundle rejects a bundle without export default or with forbidden constructs', () => {
    expect(verifyNjsBundle('b.js', 'function f() {}\nexport { f as default };\n').map((p) => p.construct)).toContain(
      'a module that does not end in `export default`',
    );
    expect(verifyNjsBundle('b.js', 'function f(a) { return a?.b; }\nexport default f;\n').map((p) => p.construct)).toEqual(['optional chaining']);
  });
});
