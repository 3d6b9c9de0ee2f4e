// The premise of the njs lint, checked against the real engine: every syntax construct the
// lint flags is refused by njs 0.8.9 when nginx loads the module (`nginx -t`), and the
// constructs the njs sources rely on are accepted. Runtime-only gaps (Map, flat(), ...)
// are checked by evaluating them in a js_content handler.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lintNjsSource } from '../../src/njs/bundle.ts';
import { freePort } from '../support/ports.ts';
// Always the oldest target: these cases prove what njs 0.8.9 refuses, whatever runtime the rest
// of the suite runs on (GATEWAYCTL_NGINX).
import { OLDEST_NGINX_BIN as NGINX_BIN, OLDEST_NJS_MODULE_SO as NJS_MODULE_SO, startNginx } from './nginx-helper.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-njs-engine-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function conf(port: number) {
  return `load_module ${NJS_MODULE_SO};
pid nginx.pid;
error_log error.log warn;
events {}
http {
  access_log off;
  client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp; uwsgi_temp_path tmp; scgi_temp_path tmp;
  js_path ${dir}/;
  js_import m from m.js;
  server { listen 127.0.0.1:${port}; location / { js_content m.main; } }
}
`;
}

function loads(body: string): { ok: boolean; out: string } {
  const d = mkdtempSync(path.join(dir, 'c-'));
  mkdirSync(path.join(d, 'tmp'));
  writeFileSync(path.join(dir, 'm.js'), `function main(r) {\n${body}\nr.return(200, 'ok');\n}\nexport default { main };\n`);
  writeFileSync(path.join(d, 'nginx.conf'), conf(1));
  const res = spawnSync(NGINX_BIN, ['-p', d + '/', '-c', path.join(d, 'nginx.conf'), '-t', '-q'], { encoding: 'utf8' });
  return { ok: res.status === 0, out: res.stderr };
}

const refused: [string, string][] = [
  ['classes', 'class A {}'],
  ['destructuring', 'const { a } = { a: 1 };'],
  ['array destructuring', 'const [a] = [1];'],
  ['spread', 'Math.max(...[1, 2]);'],
  ['object spread', 'const o = { ...{ a: 1 } };'],
  ['optional chaining', 'const o = {}; o?.a;'],
  ['default parameters', 'function f(a = 1) { return a; }'],
  ['for-of', 'for (const x of [1]) { }'],
  ['generators', 'function* g() { yield 1; }'],
  ['optional catch binding', 'try { } catch { }'],
  ['logical assignment', 'let a = null; a ??= 1;'],
  ['BigInt literals', 'const a = 10n;'],
];

describe('njs 0.8.9 refuses what the lint flags', () => {
  for (const [what, src] of refused) {
    it(what, () => {
      expect(lintNjsSource('m.ts', `function f() {\n${src}\n}`).length, 'lint flags it').toBeGreaterThan(0);
      const r = loads(src);
      expect(r.ok, `njs accepted ${what}`).toBe(false);
      expect(r.out).toMatch(/SyntaxError|not supported/);
    });
  }

  it('accepts the constructs the njs sources use', () => {
    const src = [
      'const a = 1; let b = `x${a}`; const f = (x) => x * 2; const c = 2 ** 3;',
      'const n = null; const d = n ?? 4; const o = { a: a, f }; const re = /^(?<y>\\d+)$/.exec("12");',
      'async function g() { return await Promise.resolve(1); }',
      'for (let i = 0; i < 2; i++) { } for (const k in o) { }',
      'try { JSON.parse("{"); } catch (e) { }',
    ].join('\n');
    expect(lintNjsSource('m.ts', `function f() {\n${src}\n}`)).toEqual([]);
    const r = loads(src);
    expect(r.ok, r.out).toBe(true);
  });
});

describe('njs 0.8.9 runtime gaps the lint flags', () => {
  it('Map, Set, WeakMap, Proxy, Reflect are undefined; flat/at/fromEntries/localeCompare are missing', async () => {
    const port = await freePort();
    const d = mkdtempSync(path.join(dir, 'rt-'));
    mkdirSync(path.join(d, 'tmp'));
    writeFileSync(
      path.join(dir, 'm.js'),
      `function main(r) {
  const out = [typeof Map, typeof Set, typeof WeakMap, typeof Proxy, typeof Reflect,
    typeof [].flat, typeof [].at, typeof Object.fromEntries, typeof ''.localeCompare];
  r.return(200, out.join(','));
}
export default { main };
`,
    );
    writeFileSync(path.join(d, 'nginx.conf'), conf(port));
    const ngx = await startNginx(d, port, NGINX_BIN);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      expect(await res.text()).toBe(Array(9).fill('undefined').join(','));
    } finally {
      await ngx.stop();
    }
  });
});

