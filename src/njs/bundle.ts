// Bundling njs sources with esbuild, and the njs-subset lint.
//
// njs 0.8 (default engine) lacks classes, destructuring, spread, optional chaining,
// default parameters, for-of, generators, Map and Set, and esbuild cannot lower all of
// them for it. The lint (TypeScript compiler API) finds them in the sources with
// file:line:col; the same walker re-checks the bundle esbuild produced.
// Module top-level code runs for every request in njs, so the lint also allows only
// imports, function declarations, simple const literals and the export default there.
//
// esbuild and the TypeScript compiler (about 9 MB of JavaScript) load on first use, not with
// this module: most CLI commands never lint or bundle njs. Synchronously (createRequire),
// because compile() is synchronous and bundles the njs module on a cache miss.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Esbuild from 'esbuild';
import type * as TS from 'typescript';
import { PROJECT_ROOT } from '../version.ts';

let ts: typeof TS;
let esbuild: typeof Esbuild;
const lazyRequire = createRequire(import.meta.url);
function loadTypescript(): void {
  ts ??= lazyRequire('typescript') as typeof TS;
}
function loadEsbuild(): void {
  esbuild ??= lazyRequire('esbuild') as typeof Esbuild;
}

export interface NjsLintProblem {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
  construct: string;
}

export interface NjsBundleResult {
  outFile: string;
  bytes: number;
}

// Built-in njs modules that must stay imports in the bundle.
export const NJS_BUILTIN_MODULES = ['crypto', 'fs', 'querystring', 'xml', 'zlib'];

export { PROJECT_ROOT };
export const NJS_SOURCE_DIR = path.join(PROJECT_ROOT, 'njs');
export const NJS_ENTRY = path.join(NJS_SOURCE_DIR, 'gateway.ts');

export function formatProblem(p: NjsLintProblem): string {
  return `${p.file}:${p.line}:${p.col}: njs does not support ${p.construct}`;
}

// Globals the njs 0.8 default engine does not have (checked against njs 0.8.9).
const MISSING_GLOBALS = new Set(['Map', 'Set', 'WeakMap', 'WeakSet', 'WeakRef', 'FinalizationRegistry', 'Proxy', 'Reflect', 'Intl', 'structuredClone']);
// Methods it lacks: a syntactic check on `x.name(...)` calls, whatever `x` is.
const MISSING_METHODS = new Set(['flat', 'flatMap', 'at', 'fromEntries', 'localeCompare', 'findLast', 'findLastIndex', 'toSorted', 'toReversed']);
const logicalAssignment = (): Set<TS.SyntaxKind> =>
  new Set([ts.SyntaxKind.QuestionQuestionEqualsToken, ts.SyntaxKind.BarBarEqualsToken, ts.SyntaxKind.AmpersandAmpersandEqualsToken]);

function isSimpleLiteral(e: TS.Expression): boolean {
  if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e)) {
    return isSimpleLiteral(e.expression);
  }
  if (
    ts.isStringLiteral(e) ||
    ts.isNumericLiteral(e) ||
    ts.isNoSubstitutionTemplateLiteral(e) ||
    ts.isRegularExpressionLiteral(e) ||
    e.kind === ts.SyntaxKind.TrueKeyword ||
    e.kind === ts.SyntaxKind.FalseKeyword ||
    e.kind === ts.SyntaxKind.NullKeyword
  ) {
    return true;
  }
  if (ts.isPrefixUnaryExpression(e) && e.operator === ts.SyntaxKind.MinusToken) {
    return ts.isNumericLiteral(e.operand);
  }
  return false;
}

// The export default object: identifiers / function expressions / literals only.
function isTrivialExportValue(e: TS.Expression): boolean {
  if (ts.isIdentifier(e) || isSimpleLiteral(e) || ts.isFunctionExpression(e) || ts.isArrowFunction(e)) {
    return true;
  }
  if (ts.isObjectLiteralExpression(e)) {
    return e.properties.every(
      (p) =>
        ts.isShorthandPropertyAssignment(p) ||
        ts.isMethodDeclaration(p) ||
        (ts.isPropertyAssignment(p) && isTrivialExportValue(p.initializer)),
    );
  }
  return false;
}

function topLevelProblem(stmt: TS.Statement, bundle: boolean): string | null {
  if (ts.isImportDeclaration(stmt) || ts.isFunctionDeclaration(stmt)) {
    return null;
  }
  if (ts.isInterfaceDeclaration(stmt) || ts.isTypeAliasDeclaration(stmt) || ts.isEmptyStatement(stmt)) {
    return null;
  }
  const isDeclare = ts.canHaveModifiers(stmt) && (ts.getModifiers(stmt) ?? []).some((m) => m.kind === ts.SyntaxKind.DeclareKeyword);
  if (ts.isModuleDeclaration(stmt) || isDeclare) {
    return null; // `declare ...`: types only
  }
  if (ts.isExportAssignment(stmt)) {
    return isTrivialExportValue(stmt.expression) ? null : 'a computed export default (export a literal object of handlers)';
  }
  if (ts.isExportDeclaration(stmt)) {
    return stmt.moduleSpecifier === undefined || stmt.isTypeOnly ? null : 're-exports from another module';
  }
  if (ts.isVariableStatement(stmt)) {
    const isConst = (stmt.declarationList.flags & ts.NodeFlags.Const) !== 0;
    for (const d of stmt.declarationList.declarations) {
      const init = d.initializer;
      // esbuild emits `var gateway_default = { ... }` for the export default object.
      const okInit = init !== undefined && (isSimpleLiteral(init) || (bundle && isTrivialExportValue(init)));
      if (!(isConst || bundle) || !okInit || !ts.isIdentifier(d.name)) {
        return 'top-level code other than imports, functions, simple const literals and export default (it runs on every request)';
      }
    }
    return null;
  }
  return 'top-level code other than imports, functions, simple const literals and export default (it runs on every request)';
}

// Walk one source text; `bundle` relaxes the top-level rule for esbuild's own output shape.
export function lintNjsSource(fileName: string, text: string, bundle = false): NjsLintProblem[] {
  loadTypescript();
  const LOGICAL_ASSIGNMENT = logicalAssignment();
  const kind = fileName.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS;
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, kind);
  const problems: NjsLintProblem[] = [];
  const report = (node: TS.Node, construct: string) => {
    const lc = sf.getLineAndCharacterOfPosition(node.getStart(sf));
    problems.push({ file: fileName, line: lc.line + 1, col: lc.character + 1, construct });
  };

  for (const stmt of sf.statements) {
    const p = topLevelProblem(stmt, bundle);
    if (p !== null) report(stmt, p);
  }

  const visit = (node: TS.Node): void => {
    if (ts.isClassDeclaration(node) || ts.isClassExpression(node)) {
      report(node, 'classes');
    } else if (ts.isObjectBindingPattern(node) || ts.isArrayBindingPattern(node)) {
      report(node, 'destructuring');
    } else if (
      ts.isBinaryExpression(node) &&
      node.operatorToken.kind === ts.SyntaxKind.EqualsToken &&
      (ts.isObjectLiteralExpression(node.left) || ts.isArrayLiteralExpression(node.left))
    ) {
      report(node.left, 'destructuring assignment');
    } else if (ts.isSpreadElement(node)) {
      report(node, 'spread');
    } else if (ts.isSpreadAssignment(node)) {
      report(node, 'object spread');
    } else if (ts.isParameter(node) && node.dotDotDotToken !== undefined) {
      report(node, 'rest parameters');
    } else if (ts.isParameter(node) && node.initializer !== undefined) {
      report(node, 'default parameters');
    } else if (ts.isForOfStatement(node)) {
      report(node, 'for-of');
    } else if ((ts.isFunctionDeclaration(node) || ts.isFunctionExpression(node) || ts.isMethodDeclaration(node)) && node.asteriskToken) {
      report(node, 'generators');
    } else if (ts.isYieldExpression(node)) {
      report(node, 'yield');
    } else if (ts.isCatchClause(node) && node.variableDeclaration === undefined) {
      report(node, 'optional catch binding (write `catch (e)`)');
    } else if (ts.isBinaryExpression(node) && LOGICAL_ASSIGNMENT.has(node.operatorToken.kind)) {
      report(node.operatorToken, `logical assignment ${ts.tokenToString(node.operatorToken.kind)}`);
    } else if (ts.isBigIntLiteral(node)) {
      report(node, 'BigInt literals');
    } else if (ts.isTaggedTemplateExpression(node)) {
      report(node, 'tagged templates');
    } else if (
      ts.isCallExpression(node) &&
      ts.isPropertyAccessExpression(node.expression) &&
      MISSING_METHODS.has(node.expression.name.text)
    ) {
      report(node.expression.name, `the ${node.expression.name.text}() method`);
    } else if (ts.isIdentifier(node) && MISSING_GLOBALS.has(node.text)) {
      const parent = node.parent;
      const isPropName =
        (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
        (ts.isPropertyAssignment(parent) && parent.name === node) ||
        (ts.isMethodDeclaration(parent) && parent.name === node) ||
        (ts.isPropertySignature(parent) && parent.name === node);
      if (!isPropName) report(node, ts.isNewExpression(parent) ? `new ${node.text}` : node.text);
    }
    if (
      (ts.isPropertyAccessExpression(node) || ts.isElementAccessExpression(node) || ts.isCallExpression(node)) &&
      node.questionDotToken !== undefined
    ) {
      report(node, 'optional chaining');
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  return problems;
}

export async function lintNjs(files: string[]): Promise<NjsLintProblem[]> {
  const out: NjsLintProblem[] = [];
  for (const f of files) {
    out.push(...lintNjsSource(f, await readFile(f, 'utf8')));
  }
  return out;
}

// Every njs source file (.ts/.js, not .d.ts) under dir.
/** The njs sources (.ts/.js, not .d.ts) below `dir`, in a stable order. */
export function listNjsSourcesSync(dir: string = NJS_SOURCE_DIR): string[] {
  const out: string[] = [];
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') out.push(...listNjsSourcesSync(p));
    } else if (/\.(ts|js)$/.test(e.name) && !e.name.endsWith('.d.ts')) {
      out.push(p);
    }
  }
  return out;
}

export async function listNjsSources(dir: string = NJS_SOURCE_DIR): Promise<string[]> {
  return listNjsSourcesSync(dir);
}

// esbuild emits `export { x as default };`; njs is happiest with a plain `export default x;`.
function normalizeDefaultExport(code: string): string {
  const re = /export\s*\{\s*([A-Za-z_$][\w$]*)\s+as\s+default\s*\};?\s*$/;
  const m = re.exec(code);
  if (m) return code.slice(0, m.index) + `export default ${m[1]};\n`;
  return code;
}

export class NjsBundleError extends Error {
  constructor(
    message: string,
    readonly problems: NjsLintProblem[] = [],
  ) {
    super(message);
  }
}

function esbuildEsm(entry: string, stdin?: string): string {
  loadEsbuild();
  const result = esbuild.buildSync({
    // esbuild names each source in a comment relative to this: the project root, so the
    // bundle (and the manifest's hash of it) does not depend on where gatewayctl runs
    absWorkingDir: PROJECT_ROOT,
    ...(stdin === undefined ? { entryPoints: [entry] } : { stdin: { contents: stdin, resolveDir: path.dirname(entry), sourcefile: path.basename(entry), loader: 'ts' as const } }),
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    target: 'es2017',
    minify: false,
    treeShaking: true,
    legalComments: 'none',
    charset: 'utf8',
    external: NJS_BUILTIN_MODULES,
    logLevel: 'silent',
  });
  if (result.outputFiles.length !== 1) {
    throw new NjsBundleError(`esbuild produced ${result.outputFiles.length} files for ${entry}`);
  }
  return normalizeDefaultExport(result.outputFiles[0].text);
}

interface EsmParts {
  imports: { name: string; module: string }[];
  body: string; // the code without its imports and without the final `export default x;`
  declarations: string; // body without the statement declaring x
  exported: string; // x
  handlers: string[]; // the property names of x = { ... }
  locals: Record<string, string>; // property name -> the function it names
}

// esbuild's ESM output for an njs entry: `import x from "builtin";` lines, declarations, and
// `var x = { a, b: c, ... }; export default x;`. Anything else is refused (never guessed at).
function esmParts(code: string, entry: string): EsmParts {
  loadTypescript();
  const imports: EsmParts['imports'] = [];
  const kept: string[] = [];
  for (const line of code.split('\n')) {
    const m = /^import ([A-Za-z_$][\w$]*) from "([a-z]+)";$/.exec(line);
    if (m && NJS_BUILTIN_MODULES.includes(m[2])) imports.push({ name: m[1], module: m[2] });
    else if (/^\s*import\b/.test(line)) throw new NjsBundleError(`${entry}: unexpected import in the bundle: ${line}`);
    else kept.push(line);
  }
  const text = kept.join('\n');
  const tail = /export default ([A-Za-z_$][\w$]*);\s*$/.exec(text);
  if (!tail) throw new NjsBundleError(`${entry}: the bundle does not end in \`export default\``);
  const exported = tail[1];
  const sf = ts.createSourceFile('bundle.js', text, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  let handlers: string[] | null = null;
  const locals: Record<string, string> = {};
  let declarations = '';
  for (const st of sf.statements) {
    if (!ts.isVariableStatement(st)) continue;
    if (st.declarationList.declarations.length === 1 && st.declarationList.declarations[0].name.getText(sf) === exported) {
      declarations = (text.slice(0, st.getStart(sf)) + text.slice(st.getEnd(), tail.index)).trimEnd();
    }
    for (const dcl of st.declarationList.declarations) {
      if (ts.isIdentifier(dcl.name) && dcl.name.text === exported && dcl.initializer && ts.isObjectLiteralExpression(dcl.initializer)) {
        handlers = dcl.initializer.properties.map((p) => {
          if (ts.isShorthandPropertyAssignment(p)) {
            locals[p.name.text] = p.name.text;
            return p.name.text;
          }
          if (ts.isPropertyAssignment(p) && ts.isIdentifier(p.name) && ts.isIdentifier(p.initializer)) {
            locals[p.name.text] = p.initializer.text;
            return p.name.text;
          }
          throw new NjsBundleError(`${entry}: the default export must be an object of named handlers`);
        });
      }
    }
  }
  if (!handlers || !declarations) throw new NjsBundleError(`${entry}: the default export must be an object of named handlers`);
  // esbuild keeps the import of a built-in module whose uses it shook out (it cannot know the
  // import has no side effects); each kept one is a top-level import that runs in every
  // request's VM (~400 instructions for "fs"), so only the modules the code names stay
  const named = new Set<string>();
  const visit = (n: TS.Node): void => {
    if (ts.isIdentifier(n)) named.add(n.text);
    ts.forEachChild(n, visit);
  };
  visit(sf);
  const used = imports.filter((i) => named.has(i.name));
  return { imports: used, body: text.slice(0, tail.index).trimEnd(), declarations, exported, handlers, locals };
}

/**
 * Where each handler of an entry comes from: its `export default { name: local }` and the
 * `import { imported as local } from './module'` lines (the only shape gateway.ts uses).
 */
function handlerSources(entry: string): { name: string; imported: string; local: string; module: string }[] {
  loadTypescript();
  const sf = ts.createSourceFile(entry, readFileSync(entry, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const from: Record<string, { imported: string; module: string }> = {};
  const out: { name: string; imported: string; local: string; module: string }[] = [];
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier) && st.importClause?.namedBindings && ts.isNamedImports(st.importClause.namedBindings)) {
      for (const el of st.importClause.namedBindings.elements) from[el.name.text] = { imported: (el.propertyName ?? el.name).text, module: st.moduleSpecifier.text };
    }
    if (ts.isExportAssignment(st) && ts.isObjectLiteralExpression(st.expression)) {
      for (const p of st.expression.properties) {
        const local = ts.isShorthandPropertyAssignment(p) ? p.name.text : ts.isPropertyAssignment(p) && ts.isIdentifier(p.initializer) ? p.initializer.text : null;
        const src = local === null ? undefined : from[local];
        if (!src || !p.name || !ts.isIdentifier(p.name)) throw new NjsBundleError(`${entry}: each handler must be an imported function listed as \`name: name\` in export default`);
        out.push({ name: p.name.text, imported: src.imported, local: local!, module: src.module });
      }
    }
  }
  return out;
}

/** An njs module in pieces: one self-contained function per handler (see handlerChunks). */
export interface NjsModuleParts {
  /** handler name → its top-level function `gw_<name>`, holding all the code it uses */
  handlers: { name: string; modules: string[]; code: string }[];
}

const moduleVar = (mod: string) => `gw_module_${mod}`;

/**
 * njs clones the module's VM for every request and runs its top-level code in the clone: every
 * top-level function is created again (about 200 instructions each, measured with callgrind:
 * scripts/bench/instructions.ts), and every property of the default export costs about 700.
 * A request that calls any handler pays for all of them, so the module has, per handler, ONE
 * top-level function `gw_<name>(r, a, b)` holding that handler's code and what it uses
 * (tree-shaken from its own esbuild run; nested declarations are created only when it is
 * called), and the default export lists only the handlers the build's configuration calls
 * (assembleNjsModule).
 */
export function handlerChunks(entry: string): NjsModuleParts {
  const handlers = handlerSources(entry).map((x) => {
    const chunk = (imported: string, local: string) => esmParts(esbuildEsm(entry, `import { ${imported} as ${local} } from ${JSON.stringify(x.module)};\nexport default { ${x.name}: ${local} };\n`), `${entry} (${imported})`);
    // function fn(params) { the chunk's imports; before; its declarations; after; nested }
    type Shape = { params?: string; before?: string[]; declarations?: string; after: string[]; nested?: string };
    const wrap = (fn: string, parts: EsmParts, s: Shape) => {
      const lines = [`function ${fn}(${s.params ?? 'r, a, b'}) {`];
      for (const i of parts.imports) lines.push(`var ${i.name} = ${moduleVar(i.module)};`);
      lines.push(...(s.before ?? []), s.declarations ?? parts.declarations, ...s.after);
      if (s.nested) lines.push(s.nested);
      lines.push('}');
      return lines.join('\n');
    };
    const full = chunk(x.imported, x.local);
    const fast = hasFastPath(entry, x.module, x.imported) ? chunk(`${x.imported}Fast`, `${x.local}Fast`) : null;
    // the full handler is declared inside the fast one: created when the handler is called, not
    // in every request VM as a top-level function would be (its own helpers only when it runs)
    const nestedFull = wrap(`gw_${x.name}_full`, full, { after: [`return ${full.locals[x.name]}(r, a, b);`] });
    const inlined = fast ? inlineFastPath(fast, fast.locals[x.name]) : null;
    const code = inlined
      ? [
          `// handler ${x.name}: its fast path (the body of ${inlined.source}), and gw_${x.name}_full when that cannot decide (created only in a request VM that calls it)`,
          wrap(`gw_${x.name}`, fast!, {
            params: inlined.params.join(', '),
            before: [`var ${inlined.full} = gw_${x.name}_full;`],
            declarations: inlined.declarations,
            after: ['{', inlined.body, '}'],
            nested: nestedFull,
          }),
        ].join('\n')
      : fast
        ? [
            `// handler ${x.name}: its fast path, and gw_${x.name}_full when that cannot decide (created only in a request VM that calls it)`,
            wrap(`gw_${x.name}`, fast, { after: [`return ${fast.locals[x.name]}(r, gw_${x.name}_full, a, b);`], nested: nestedFull }),
          ].join('\n')
        : [`// handler ${x.name}: its code is created only in a request VM that calls it`, wrap(`gw_${x.name}`, full, { after: [`return ${full.locals[x.name]}(r, a, b);`] })].join('\n');
    const modules = [...new Set([...full.imports, ...(fast ? fast.imports : [])].map((i) => i.module))].sort();
    return { name: x.name, modules, code };
  });
  return { handlers };
}

/**
 * The fast path's function `name(r, full, ...)` taken apart so that its body becomes the body of
 * the handler's own function `gw_<h>(r, ...)`: calling a nested function costs its creation and
 * a call frame (about 1,100 instructions a request on the API-key route), so the handler runs
 * the fast path's statements itself, with `full` a variable naming gw_<h>_full. The body goes in
 * a block, so its `const`/`let` names may shadow the module's. Only for a function with plain
 * parameters (the first the request, the second `full`) that nothing else in the chunk names,
 * whose body declares no function and no `var` and does not use `arguments` or `this`; anything else keeps
 * the nested function (null). A fast path that only hands over to another with its own
 * arguments (`return other(r, full)`) has that other one's body inlined, on the same terms.
 */
function inlineFastPath(parts: EsmParts, name: string): { source: string; params: string[]; full: string; declarations: string; body: string } | null {
  loadTypescript();
  const text = parts.declarations;
  const sf = ts.createSourceFile('fast.js', text, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const decl = (n: string) => sf.statements.find((st): st is TS.FunctionDeclaration => ts.isFunctionDeclaration(st) && st.name?.text === n);
  const plain = (f: TS.FunctionDeclaration | undefined): f is TS.FunctionDeclaration =>
    !!f?.body && f.parameters.length >= 2 && f.parameters.every((p) => ts.isIdentifier(p.name) && !p.initializer && !p.dotDotDotToken);
  const paramNames = (f: TS.FunctionDeclaration) => f.parameters.map((p) => (p.name as TS.Identifier).text);
  const entry = decl(name);
  if (!plain(entry)) return null;
  // a fast path that only hands over to another with its own arguments (`return other(r, full)`:
  // jwtSyncFast answers as jwtCachedFast does) has that one's body inlined
  let fn = entry;
  const only = entry.body!.statements.length === 1 ? entry.body!.statements[0] : undefined;
  if (only && ts.isReturnStatement(only) && only.expression && ts.isCallExpression(only.expression) && ts.isIdentifier(only.expression.expression)) {
    const call = only.expression;
    const other = decl((call.expression as TS.Identifier).text);
    const own = paramNames(entry);
    if (plain(other) && call.arguments.length === own.length && call.arguments.every((x, i) => ts.isIdentifier(x) && x.text === own[i]) && other.parameters.length === own.length) fn = other;
  }
  // each inlined name must be named nowhere else: its declaration, and the hand-over's call
  const expected = new Map<string, number>([[name, 1]]);
  if (fn !== entry) expected.set(fn.name!.text, 2);
  const uses = new Map<string, number>();
  let unsafe = false;
  const visit = (n: TS.Node, inFast: boolean): void => {
    if (ts.isIdentifier(n) && expected.has(n.text)) uses.set(n.text, (uses.get(n.text) ?? 0) + 1);
    if (inFast && (n.kind === ts.SyntaxKind.ThisKeyword || (ts.isIdentifier(n) && n.text === 'arguments') || ts.isFunctionDeclaration(n) || ts.isFunctionExpression(n) || ts.isArrowFunction(n))) unsafe = true;
    // a `var` would be hoisted out of the block into the handler's scope, beside the module's names
    if (inFast && ts.isVariableDeclarationList(n) && !(n.flags & (ts.NodeFlags.Let | ts.NodeFlags.Const))) unsafe = true;
    ts.forEachChild(n, (c) => visit(c, inFast || n === fn.body));
  };
  visit(sf, false);
  if (unsafe || [...expected].some(([n, k]) => uses.get(n) !== k)) return null;
  const names = paramNames(fn);
  const statements = fn.body!.statements;
  const body = statements.length ? text.slice(statements[0].getFullStart(), statements[statements.length - 1].getEnd()) : '';
  // drop the inlined declarations, later ones first so the earlier offsets hold
  let declarations = text;
  for (const f of [...new Set([entry, fn])].sort((x, y) => y.getFullStart() - x.getFullStart())) declarations = declarations.slice(0, f.getFullStart()) + declarations.slice(f.getEnd());
  return { source: fn.name!.text, params: [names[0], ...names.slice(2)], full: names[1], declarations: declarations.trimEnd(), body };
}

/**
 * A handler `h` whose module also exports `hFast(r, full, a, b)` gets a fast path: the common case
 * (a known API key, a cached token, a plain request's counters, a steady chunk of a stream)
 * written flat in one function with no helper declarations, calling `full(r, a, b)` (the whole
 * handler; a and b: a body filter's data and flags) for anything else. The
 * full handler's code, with its dozens of helpers, is then never created on the common path:
 * each function declaration costs about 200 instructions per call of the function holding it.
 */
function hasFastPath(entry: string, module: string, imported: string): boolean {
  loadTypescript();
  const file = path.resolve(path.dirname(entry), module);
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  return sf.statements.some(
    (st) => ts.isFunctionDeclaration(st) && st.name?.text === `${imported}Fast` && (ts.getModifiers(st) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword),
  );
}

/**
 * The module text exporting `names` (all handlers when null), in the entry's order. Plain
 * string assembly of verified pieces, so a build needs neither esbuild nor TypeScript.
 */
export function assembleNjsModule(parts: NjsModuleParts, names: readonly string[] | null): string {
  const chosen = names === null ? parts.handlers : parts.handlers.filter((h) => names.includes(h.name));
  if (names !== null) {
    const unknown = names.filter((n) => !parts.handlers.some((h) => h.name === n));
    if (unknown.length) throw new NjsBundleError(`njs handlers not in the bundle: ${unknown.join(', ')}`);
  }
  const modules = [...new Set(chosen.flatMap((h) => h.modules))].sort();
  const out: string[] = ['// one function per handler the configuration calls (src/njs/bundle.ts, handlerChunks)'];
  for (const mod of modules) out.push(`import ${moduleVar(mod)} from "${mod}";`);
  out.push('');
  for (const h of chosen) out.push(h.code, '');
  out.push(`var gateway_default = {${chosen.map((h) => `\n  ${h.name}: gw_${h.name}`).join(',')}\n};`, 'export default gateway_default;', '');
  return out.join('\n');
}

/**
 * The pieces of an entry's module, verified: the module of all handlers and the module of
 * each handler alone pass the njs-subset lint (any subset is then valid: the same functions).
 */
export function bundleNjsParts(entry: string, fileName: string): NjsModuleParts {
  const parts = handlerChunks(entry);
  for (const names of [null, ...parts.handlers.map((h) => [h.name])]) {
    const problems = verifyNjsBundle(fileName, assembleNjsModule(parts, names));
    if (problems.length > 0) {
      throw new NjsBundleError(`bundle ${fileName} is not valid for njs:\n` + problems.map(formatProblem).join('\n'), problems);
    }
  }
  return parts;
}

/** The module of every handler of an entry, verified (njs-lint, tests). */
export function bundleNjsText(entry: string, fileName: string): string {
  return assembleNjsModule(bundleNjsParts(entry, fileName), null);
}

// Bundle one entry into one njs module file (written atomically).
export async function bundleNjs(entry: string, outFile: string): Promise<NjsBundleResult> {
  const code = bundleNjsText(entry, outFile);
  await mkdir(path.dirname(outFile), { recursive: true });
  const tmp = `${outFile}.tmp-${process.pid}`;
  await writeFile(tmp, code);
  await rename(tmp, outFile);
  return { outFile, bytes: Buffer.byteLength(code) };
}

// Checks on the bundled JavaScript: the njs subset and a final `export default`.
export function verifyNjsBundle(fileName: string, code: string): NjsLintProblem[] {
  const problems = lintNjsSource(fileName.replace(/\.ts$/, '.js'), code, true);
  if (!/export default [A-Za-z_$][\w$]*;\s*$/.test(code)) {
    const lines = code.split('\n');
    problems.push({ file: fileName, line: lines.length, col: 1, construct: 'a module that does not end in `export default`' });
  }
  return problems;
}

// For the CLI (`gatewayctl njs-lint`): lint every njs source and the bundle; exit code.
export async function runNjsLint(): Promise<number> {
  const files = await listNjsSources();
  const problems = await lintNjs(files);
  const rel = (f: string) => path.relative(process.cwd(), f) || f;
  for (const p of problems) process.stderr.write(formatProblem({ ...p, file: rel(p.file) }) + '\n');
  if (problems.length > 0) {
    process.stderr.write(`njs-lint: ${problems.length} problem(s) in ${files.length} file(s)\n`);
    return 1;
  }
  try {
    const os = await import('node:os');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gw-njs-lint-'));
    try {
      await bundleNjs(NJS_ENTRY, path.join(dir, 'gateway.js'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } catch (e) {
    process.stderr.write(`njs-lint: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`njs-lint: ${files.length} file(s) OK, bundle OK\n`);
  return 0;
}
