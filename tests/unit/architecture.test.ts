// The architecture's two structural rules, checked on every run: the core never imports a
// feature (features reach the core only through the registry a composition root passes in),
// and the sources have no import cycles (type-only imports included).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/version.ts';

const CORE = ['src/config', 'src/model', 'src/plan', 'src/core', 'src/targets'];

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : /\.(ts|mjs)$/.test(n) ? [p] : [];
  });
}

/** Relative imports of a file (static, dynamic and type-only), resolved to absolute paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'";]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)) {
    out.push(path.resolve(path.dirname(file), m[1] ?? m[2]));
  }
  return out;
}

describe('architecture', () => {
  it('no module of the core imports a feature', () => {
    const offenders: string[] = [];
    for (const dir of CORE) {
      for (const f of walk(path.join(PROJECT_ROOT, dir))) {
        for (const target of importsOf(f)) {
          if (target.startsWith(path.join(PROJECT_ROOT, 'src/features') + path.sep)) offenders.push(`${path.relative(PROJECT_ROOT, f)} -> ${path.relative(PROJECT_ROOT, target)}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });

  it('src/ and njs/ have no import cycles', () => {
    const files = [...walk(path.join(PROJECT_ROOT, 'src')), ...walk(path.join(PROJECT_ROOT, 'njs'))];
    const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => files.includes(t))]));
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, stack: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...stack.slice(stack.indexOf(f)), f].map((x) => path.relative(PROJECT_ROOT, x)).join(' -> '));
        return;
      }
      state.set(f, 'open');
      for (const t of graph.get(f) ?? []) visit(t, [...stack, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });
});
