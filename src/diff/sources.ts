// The two sides of a diff: the working tree (compiled), a git ref (the config and its
// includes extracted at that ref into a temporary directory, then compiled there) or a
// deployed release / build directory (its files as they are, plus model.json if present).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { compile, type CompileOptions } from '../build/compile.ts';
import type { Diagnostic, GatewayModel } from '../model/types.ts';

export interface Side {
  /** how the side is named in output, e.g. "origin/main (3f2a1c9)", "working tree", "/srv/gw/current" */
  label: string;
  /** generated files; null when the side could not be built */
  files: Record<string, string> | null;
  /** null when no model is available (release without model.json, failed build) */
  model: GatewayModel | null;
  /** why `model` is null, for the output */
  modelNote: string | null;
  diagnostics: Diagnostic[];
}

export class DiffSourceError extends Error {}

/** Compile the config in the working tree. */
export function headSide(config: string, opts: CompileOptions = {}): Side {
  const r = compile(config, opts);
  return {
    label: 'working tree',
    files: r.ok ? r.files : null,
    model: r.ok ? r.model : null,
    modelNote: r.ok ? null : 'the working-tree config does not build',
    diagnostics: r.diagnostics,
  };
}

function git(cwd: string, args: string[]): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

function gitBuffer(cwd: string, args: string[]): Buffer {
  return execFileSync('git', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

function gitError(e: unknown): string {
  const err = e as { stderr?: Buffer | string; message: string };
  const s = err.stderr ? String(err.stderr).trim() : '';
  return s.split('\n')[0] || err.message;
}

export interface GitContext {
  top: string; // repository root (real path)
  rel: string; // config path relative to the root, with forward slashes
}

export function gitContext(config: string): GitContext {
  const abs = path.resolve(config);
  let dir = path.dirname(abs);
  // the config may not exist in the working tree any more; walk up to an existing dir
  while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  let top: string;
  try {
    top = realpathSync(git(dir, ['rev-parse', '--show-toplevel']).trim());
  } catch (e) {
    throw new DiffSourceError(`${config} is not inside a git repository (${gitError(e)}); use --against DIR to compare with a build directory`);
  }
  const realDir = realpathSync(dir);
  const rel = path.relative(top, path.join(realDir, path.relative(dir, abs))).split(path.sep).join('/');
  if (rel.startsWith('..')) throw new DiffSourceError(`${config} is outside the git repository at ${top}`);
  return { top, rel };
}

/**
 * The default base: the merge base of HEAD with main (then origin/main, for CI checkouts
 * without a local main), falling back to HEAD.
 */
export function defaultBase(top: string): { ref: string; label: string } {
  for (const main of ['main', 'origin/main']) {
    try {
      return { ref: git(top, ['merge-base', 'HEAD', main]).trim(), label: `merge-base with ${main}` };
    } catch {
      /* try the next candidate */
    }
  }
  return { ref: 'HEAD', label: 'HEAD (no main branch to merge-base with)' };
}

function resolveRef(top: string, ref: string): string {
  try {
    return git(top, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]).trim();
  } catch {
    throw new DiffSourceError(`unknown git ref "${ref}" in ${top}`);
  }
}

function showFile(top: string, commit: string, rel: string): Buffer | null {
  try {
    return gitBuffer(top, ['show', `${commit}:${rel}`]);
  } catch {
    return null;
  }
}

function parseOrNull(text: string): unknown {
  try {
    return parseYaml(text) as unknown;
  } catch {
    return null;
  }
}

/** Included files named by a config text (relative to the config's directory). */
export function includesOf(text: string): string[] {
  const v = parseOrNull(text) as { include?: unknown } | null;
  return v && Array.isArray(v.include) ? v.include.filter((x): x is string => typeof x === 'string') : [];
}

const RELATIVE_FILE = /^(?!\/)[A-Za-z0-9._@+-][A-Za-z0-9._/@+-]*$/;

/**
 * Every string value in a config that could be a relative file path (keys file, JWKS,
 * secrets, certificates, …). Over-approximates on purpose: a candidate is only used when
 * such a file exists.
 */
export function fileCandidates(text: string): string[] {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      if (RELATIVE_FILE.test(v)) out.add(v);
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(parseOrNull(text));
  return [...out];
}

/** Swap every occurrence of `from` for `to` in a JSON-able value's strings. */
function rewriteStrings<T>(v: T, from: string, to: string): T {
  return JSON.parse(JSON.stringify(v), (_k, x: unknown) => (typeof x === 'string' && x.includes(from) ? x.split(from).join(to) : x)) as T;
}

export interface BaseOptions extends CompileOptions {
  /** git ref; default defaultBase() */
  ref?: string;
}

/**
 * Build the config as it was at a git ref: `git show REF:<config>` and each of its
 * includes into a temp dir (same layout relative to the repository root), compile there,
 * then rewrite the temp path back to the repository path so absolute paths (certificates,
 * ACME webroot) compare equal with the working tree.
 */
export function baseSide(config: string, opts: BaseOptions = {}): Side {
  const { top, rel } = gitContext(config);
  const dflt = opts.ref === undefined ? defaultBase(top) : null;
  const refName = opts.ref ?? dflt!.ref;
  const commit = resolveRef(top, refName);
  const label = `${opts.ref ?? dflt!.label} (${commit.slice(0, 12)})`;
  const main = showFile(top, commit, rel);
  if (!main) {
    // a config that does not exist at the base is new: everything in it is added
    return { label, files: {}, model: null, modelNote: `${rel} does not exist at ${refName}`, diagnostics: [] };
  }
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gatewayctl-diff-'));
  try {
    const put = (relPath: string, content: Buffer) => {
      const p = path.join(tmp, relPath);
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, content);
    };
    put(rel, main);
    const relDir = path.posix.dirname(rel);
    const inRepo = (p: string) => {
      const r = path.posix.normalize(path.posix.join(relDir, p));
      return r.startsWith('..') ? null : r;
    };
    const texts = [main.toString('utf8')];
    for (const inc of includesOf(texts[0])) {
      const incRel = inRepo(inc);
      if (!incRel) continue; // outside the repository: compile reports it as missing
      const content = showFile(top, commit, incRel);
      if (content) {
        put(incRel, content);
        texts.push(content.toString('utf8'));
      } // a missing include is reported by compile (GW105)
    }
    // Other files the build reads (API keys store, JWKS, secrets): as committed at the ref;
    // files git does not track there (local secrets, untracked key stores) are environment,
    // the same for both sides, and are taken from the working tree.
    const tracked = new Set(git(top, ['ls-tree', '-r', '--name-only', '-z', commit]).split('\0'));
    const written = new Set([rel, ...includesOf(texts[0]).map(inRepo)]);
    for (const cand of new Set(texts.flatMap(fileCandidates))) {
      const candRel = inRepo(cand);
      if (!candRel || written.has(candRel)) continue;
      written.add(candRel);
      if (tracked.has(candRel)) {
        const content = showFile(top, commit, candRel);
        if (content) put(candRel, content);
        continue;
      }
      const local = path.join(top, candRel);
      try {
        if (statSync(local).isFile()) put(candRel, readFileSync(local));
      } catch {
        /* not a file here either */
      }
    }
    const tmpConfig = path.join(tmp, rel);
    const r = compile(tmpConfig, opts);
    // the working tree resolves paths from the config path as given (not its real path),
    // so map the temp dir onto the repository root as seen through that path
    const given = path.resolve(config);
    const relNative = rel.split('/').join(path.sep);
    const topGiven = given.endsWith(path.sep + relNative) ? given.slice(0, -relNative.length - 1) : top;
    const display = (() => {
      const d = path.relative(process.cwd(), given);
      return d && !d.startsWith('..') ? d : given;
    })();
    const fix = <T>(v: T): T => rewriteStrings(rewriteStrings(v, tmp, topGiven), `from ${path.join(topGiven, relNative)} (`, `from ${display} (`);
    const files = r.ok && r.files ? fix(r.files) : null;
    const model = r.ok && r.model ? fix(r.model) : null;
    if (model) model.source.file = display;
    // positions name the file as it is in git: REF:path/in/repo.yaml
    const diagnostics = fix(r.diagnostics).map((d) =>
      d.at ? { ...d, at: { ...d.at, file: `${refName}:${path.relative(topGiven, path.resolve(d.at.file)).split(path.sep).join('/')}` } } : d,
    );
    return {
      label,
      files,
      model,
      modelNote: r.ok ? null : `the config at ${refName} does not build`,
      diagnostics,
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function listFiles(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p, base));
    else out.push(path.relative(base, p).split(path.sep).join('/'));
  }
  return out.sort();
}

/** Whether a parsed model.json looks like a GatewayModel this version can diff. */
function looksLikeModel(v: unknown): v is GatewayModel {
  const m = v as Record<string, unknown> | null;
  return (
    !!m &&
    typeof m === 'object' &&
    ['listeners', 'upstreams', 'rateZones', 'connZones', 'caches', 'routes', 'unsafeSnippets'].every((k) => Array.isArray(m[k])) &&
    typeof m.global === 'object' &&
    typeof m.access === 'object'
  );
}

/**
 * A deployed release or a build directory (nginx.conf, conf.d/, manifest.json). A deploy
 * target (with a `current` link) means its current release. model.json, when present,
 * gives the semantic summary.
 */
export function againstSide(dir: string): Side {
  let root = path.resolve(dir);
  if (!existsSync(root)) throw new DiffSourceError(`${dir} does not exist`);
  if (!existsSync(path.join(root, 'manifest.json')) && existsSync(path.join(root, 'current', 'manifest.json'))) {
    root = path.join(root, 'current');
  }
  if (!existsSync(path.join(root, 'nginx.conf'))) {
    throw new DiffSourceError(`${dir} has no nginx.conf (expected a gatewayctl build, a release directory or a deploy target)`);
  }
  root = realpathSync(root);
  const files: Record<string, string> = {};
  for (const rel of listFiles(root)) files[rel] = readFileSync(path.join(root, rel), 'utf8');
  let model: GatewayModel | null = null;
  let modelNote: string | null = null;
  if (files['model.json'] === undefined) {
    modelNote = `${dir} has no model.json`;
  } else {
    try {
      const parsed: unknown = JSON.parse(files['model.json']);
      if (looksLikeModel(parsed)) model = parsed;
      else modelNote = `${dir}/model.json is not a gatewayctl model`;
    } catch (e) {
      modelNote = `${dir}/model.json: ${(e as Error).message}`;
    }
  }
  delete files['model.json'];
  return { label: dir, files, model, modelNote, diagnostics: [] };
}

/** model.json for a release directory: the GatewayModel, stable key order as built. */
export function modelJson(model: GatewayModel): string {
  return `${JSON.stringify(model, null, 2)}\n`;
}
