// `gatewayctl diff` end to end: --base against a temporary git repository (config with an
// include file), --against a build / release directory, the three formats, --exit-code and
// colour.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBuild } from '../../src/build/write.ts';
import { run } from '../../src/commands/diff.ts';
import { gatewaySchema } from '../../src/config/schema.ts';
import { FEATURES } from '../../src/features/index.ts';
import { modelJson } from '../../src/diff/sources.ts';
import { createKey, KEYS_FILE_VERSION, serializeKeys, type KeyFile } from '../../src/keys/store.ts';
import { baseConfig, clone, compileCfg, tempDir, yaml, type Cfg } from './helpers.ts';
import { capture } from '../support/capture.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'gatewayctl tests',
  GIT_AUTHOR_EMAIL: 'tests@example.invalid',
  GIT_COMMITTER_NAME: 'gatewayctl tests',
  GIT_COMMITTER_EMAIL: 'tests@example.invalid',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** main config with the upstreams in an include file, as teams split them */
function split(cfg: Cfg): { main: string; inc: string } {
  const { upstreams, ...rest } = cfg;
  return { main: yaml({ ...rest, include: ['conf/upstreams.yaml'] }), inc: yaml({ upstreams }) };
}

function writeRepo(dir: string, cfg: Cfg): void {
  const { main, inc } = split(cfg);
  mkdirSync(path.join(dir, 'gw', 'conf'), { recursive: true });
  writeFileSync(path.join(dir, 'gw', 'gateway.yaml'), main);
  writeFileSync(path.join(dir, 'gw', 'conf', 'upstreams.yaml'), inc);
}

describe('gatewayctl diff --base (git)', () => {
  let repo: string;
  let config: string;

  beforeAll(() => {
    repo = tempDir('repo');
    dirs.push(repo);
    git(repo, 'init', '-q', '-b', 'main');
    writeRepo(repo, baseConfig());
    writeFileSync(path.join(repo, 'README'), 'gateway\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '-qm', 'gateway');
    config = path.join(repo, 'gw', 'gateway.yaml');
  });

  it('reports no difference for an unchanged working tree', async () => {
    const r = await capture(() => run({ config, exitCode: true, color: 'never' }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('No semantic changes.');
    expect(r.stdout).toContain('Generated nginx config: identical');
  });

  it('compares equal through a symlinked path to the repository (certificate paths)', async () => {
    const link = path.join(tempDir('link'), 'repo');
    dirs.push(path.dirname(link));
    symlinkSync(repo, link);
    const r = await capture(() => run({ config: path.join(link, 'gw', 'gateway.yaml'), base: 'HEAD', exitCode: true, format: 'json' }));
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ differs: false, semantic: { changes: [] } });
    expect(r.code).toBe(0);
  });

  it('diffs working-tree edits in the config and its include file against HEAD', async () => {
    const cfg = baseConfig();
    cfg.routes[0].upstream = 'llm-v2';
    cfg.upstreams.api.servers[0] = '10.0.2.2:80';
    cfg.limits.rate.api.rate = '50r/s';
    writeRepo(repo, cfg);
    try {
      const r = await capture(() => run({ config, base: 'HEAD', exitCode: true, color: 'never' }));
      expect(r.stderr).toBe('');
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^gatewayctl diff: HEAD \([0-9a-f]{12}\) → working tree\n/);
      expect(r.stdout).toContain('  ~ route chat: upstream llm → llm-v2\n');
      expect(r.stdout).toContain('  ~ upstream api: server 10.0.2.1:80 → 10.0.2.2:80\n');
      expect(r.stdout).toContain('  ⚠ RISK: rate limit api: 10r/s → 50r/s (loosened)\n');
      expect(r.stdout).toContain('⚠ 1 risky change (marked RISK below)');
      expect(r.stdout).toContain('--- a/conf.d/30-upstreams.conf\n+++ b/conf.d/30-upstreams.conf\n');
      expect(r.stdout).toContain('-    server 10.0.2.1:80 max_fails=1 fail_timeout=10s;\n+    server 10.0.2.2:80 max_fails=1 fail_timeout=10s;\n');
      expect(r.stdout).not.toContain('\x1b[');
      // absolute paths compiled in the temp checkout (certificates) compare equal to the working tree
      expect(r.stdout).not.toMatch(/ssl_certificate|tls\.cert/);
      // without --exit-code a difference is not a failure
      expect((await capture(() => run({ config, base: 'HEAD', color: 'never' }))).code).toBe(0);
    } finally {
      git(repo, 'checkout', '-q', '--', '.');
    }
  });

  it('defaults to the merge base with main on a feature branch', async () => {
    git(repo, 'checkout', '-q', '-b', 'feature');
    try {
      const cfg = baseConfig();
      cfg.listeners[1].tls.profile = 'intermediate';
      writeRepo(repo, cfg);
      git(repo, 'commit', '-qam', 'intermediate TLS');
      const mergeBase = git(repo, 'merge-base', 'HEAD', 'main').trim();
      const r = await capture(() => run({ config, format: 'json' }));
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.base).toBe(`merge-base with main (${mergeBase.slice(0, 12)})`);
      expect(j.differs).toBe(true);
      expect(j.risks.map((x: { risk: string }) => x.risk)).toEqual(['tls-downgraded']);
      // HEAD itself has the change: nothing to report
      const h = await capture(() => run({ config, base: 'HEAD', format: 'json', exitCode: true }));
      expect(JSON.parse(h.stdout).differs).toBe(false);
      expect(h.code).toBe(0);
    } finally {
      git(repo, 'checkout', '-q', 'main');
    }
  });

  it('treats a config that does not exist at the base as new', async () => {
    const fresh = path.join(repo, 'gw', 'new.yaml');
    writeFileSync(fresh, yaml(baseConfig()));
    try {
      const r = await capture(() => run({ config: fresh, base: 'HEAD', exitCode: true, color: 'never' }));
      expect(r.code).toBe(1);
      expect(r.stdout).toContain('Semantic summary unavailable: gw/new.yaml does not exist at HEAD');
      expect(r.stdout).toContain('--- /dev/null\n+++ b/nginx.conf\n');
    } finally {
      rmSync(fresh);
    }
  });

  it('fails with exit code 2 for an unknown ref, a broken working tree or a broken base', async () => {
    const bad = await capture(() => run({ config, base: 'no-such-ref' }));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown git ref "no-such-ref"');

    writeFileSync(config, 'version: 1\nlisteners: []\nroutes: []\n');
    try {
      const broken = await capture(() => run({ config, base: 'HEAD' }));
      expect(broken.code).toBe(2);
      expect(broken.stderr).toContain('(working tree) does not build');
    } finally {
      git(repo, 'checkout', '-q', '--', '.');
    }

    // a base whose include file is missing at that commit
    git(repo, 'checkout', '-q', '-b', 'broken-base');
    try {
      git(repo, 'rm', '-q', 'gw/conf/upstreams.yaml');
      git(repo, 'commit', '-qm', 'drop include');
      const brokenBase = git(repo, 'rev-parse', 'HEAD').trim();
      git(repo, 'checkout', '-q', 'main');
      const r = await capture(() => run({ config, base: brokenBase }));
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('does not build');
      expect(r.stderr).toContain('cannot read included file conf/upstreams.yaml');
    } finally {
      git(repo, 'checkout', '-q', 'main');
    }
  });

  it('rejects --base with --against and unknown formats', async () => {
    expect((await capture(() => run({ config, base: 'HEAD', against: repo }))).code).toBe(2);
    expect((await capture(() => run({ config, format: 'yaml' }))).code).toBe(2);
    expect((await capture(() => run({ config, color: 'sometimes' }))).code).toBe(2);
  });
});

describe.runIf('auth' in (gatewaySchema(FEATURES).properties as Record<string, unknown>))('gatewayctl diff --base: files the config reads', () => {
  it('takes tracked files (API key store) at the ref and untracked ones (secrets) from the working tree', async () => {
    const repo = tempDir('repo-auth');
    dirs.push(repo);
    git(repo, 'init', '-q', '-b', 'main');
    const cfg = baseConfig();
    cfg.auth = {
      api_keys: { file: 'keys.yaml' },
      jwt: { main: { algorithms: ['HS256'], secret_file: 'secrets/jwt.key' } },
    };
    cfg.routes[0].auth = { methods: ['api_key', 'jwt'] };
    writeFileSync(path.join(repo, 'gateway.yaml'), yaml(cfg));
    const store: KeyFile = { version: KEYS_FILE_VERSION, keys: [] };
    createKey(store, { name: 'acme' }, new Date());
    writeFileSync(path.join(repo, 'keys.yaml'), serializeKeys(store));
    mkdirSync(path.join(repo, 'secrets'));
    writeFileSync(path.join(repo, 'secrets', 'jwt.key'), 'k'.repeat(64));
    writeFileSync(path.join(repo, '.gitignore'), 'secrets/\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '-qm', 'gateway with auth');
    const config = path.join(repo, 'gateway.yaml');

    const same = await capture(() => run({ config, base: 'HEAD', exitCode: true, color: 'never' }));
    expect(same.stderr).toBe('');
    expect(same.code).toBe(0);

    createKey(store, { name: 'globex' }, new Date());
    writeFileSync(path.join(repo, 'keys.yaml'), serializeKeys(store));
    const r = await capture(() => run({ config, base: 'HEAD', exitCode: true, format: 'json' }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.semantic.changes).toEqual([]); // keys are data, not config
    expect(j.files.map((f: { path: string }) => f.path)).toEqual(['conf.d/keys.map']);
  });
});

describe('gatewayctl diff --against (build or release directory)', () => {
  let root: string;
  let config: string;
  let head: Cfg;

  beforeAll(() => {
    root = tempDir('against');
    dirs.push(root);
    config = path.join(root, 'gateway.yaml');
    head = baseConfig();
    head.routes[1].cors = { origins: ['*'] };
    head.upstreams.llm.servers.push('10.0.0.3:8000');
    writeFileSync(config, yaml(head));
  });

  function release(name: string, cfg: Cfg, withModel: boolean): string {
    const built = compileCfg(cfg, path.join(root, 'deployed.yaml'));
    const dir = path.join(root, name);
    writeBuild(dir, withModel ? { ...built.files, 'model.json': modelJson(built.model) } : built.files);
    return dir;
  }

  it('gives the semantic summary when the release has model.json', async () => {
    const dir = release('with-model', baseConfig(), true);
    const r = await capture(() => run({ config, against: dir, format: 'json', exitCode: true }));
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.base).toBe(dir);
    expect(j.semantic.available).toBe(true);
    expect(j.semantic.changes.map((c: { text: string }) => c.text)).toEqual([
      'route models: CORS enabled for * (open to any origin)',
      'upstream llm: server 10.0.0.3:8000 added',
    ]);
    expect(j.risks).toEqual([expect.objectContaining({ section: 'routes', risk: 'cors-wildcard', subject: 'route models' })]);
    expect(j.files.map((f: { path: string }) => f.path)).toEqual(['conf.d/00-maps.conf', 'conf.d/30-upstreams.conf', 'conf.d/40-servers.conf']);
    expect(j.files[1].diff).toContain('+    server 10.0.0.3:8000');
  });

  it('shows only the file diff when the release has no model.json', async () => {
    const dir = release('no-model', baseConfig(), false);
    const r = await capture(() => run({ config, against: dir, color: 'never' }));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Semantic summary unavailable: ${dir} has no model.json; showing the generated-file diff only.`);
    expect(r.stdout).toContain('+    server 10.0.0.3:8000');
  });

  it('follows a deploy target to its current release and finds an identical build', async () => {
    const target = path.join(root, 'target');
    mkdirSync(path.join(target, 'releases'), { recursive: true });
    const rel = release(path.join('target', 'releases', '20260101T000000Z-abc'), head, true);
    symlinkSync(path.relative(target, rel), path.join(target, 'current'));
    const r = await capture(() => run({ config, against: target, exitCode: true, color: 'never' }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('No semantic changes.');
    expect(r.stdout).toContain('identical');
  });

  it('refuses a directory that is not a build', async () => {
    const r = await capture(() => run({ config, against: root }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('has no nginx.conf');
  });

  it('prints markdown for a pull-request comment', async () => {
    const dir = release('md', baseConfig(), true);
    const r = await capture(() => run({ config, against: dir, format: 'markdown', color: 'always' }));
    expect(r.code).toBe(0);
    const md = r.stdout;
    expect(md).not.toContain('\x1b['); // colour never applies to markdown
    expect(md).toContain('### gatewayctl diff');
    expect(md).toContain('> [!WARNING]\n> **⚠ 1 risky change**');
    expect(md).toContain('> - route models: CORS enabled for \\* (open to any origin)');
    expect(md).toContain('**Routes**\n\n- ⚠ **RISK:** route models: CORS enabled for \\* (open to any origin)');
    expect(md).toContain('**Upstreams**\n\n- upstream llm: server 10.0.0.3:8000 added');
    expect(md).toMatch(/<details>\n<summary>Generated nginx config: 3 files differ \(\+\d+ -\d+\)<\/summary>/);
    expect(md).toContain('```diff\n--- a/conf.d/00-maps.conf');
    expect(md).toMatch(/\n```\n\n<\/details>\n$/);
  });

  it('colours text output with --color always only', async () => {
    const dir = release('color', baseConfig(), true);
    const always = await capture(() => run({ config, against: dir, color: 'always' }));
    expect(always.stdout).toContain('\x1b[32m+    server 10.0.0.3:8000');
    expect(always.stdout).toContain('\x1b[33m⚠ RISK:');
    // auto: stdout is not a TTY under the test runner
    const auto = await capture(() => run({ config, against: dir }));
    expect(auto.stdout).not.toContain('\x1b[');
  });

  it('applies --context to the unified diff', async () => {
    const dir = release('ctx', baseConfig(), true);
    const r = await capture(() => run({ config, against: dir, format: 'json', context: '0' }));
    const diff = JSON.parse(r.stdout).files[0].diff as string;
    expect(diff.split('\n').filter((l) => l.startsWith(' '))).toEqual([]);
  });
});

describe('json format', () => {
  it('has a stable shape', async () => {
    const root = tempDir('json');
    dirs.push(root);
    const config = path.join(root, 'gateway.yaml');
    const cfg = clone(baseConfig());
    writeFileSync(config, yaml(cfg));
    const built = compileCfg(baseConfig(), path.join(root, 'other.yaml'));
    writeBuild(path.join(root, 'dist'), { ...built.files, 'model.json': modelJson(built.model) });
    const j = JSON.parse((await capture(() => run({ config, against: path.join(root, 'dist'), format: 'json' }))).stdout);
    expect(Object.keys(j)).toEqual(['base', 'head', 'differs', 'semantic', 'risks', 'files']);
    expect(j).toMatchObject({ head: 'working tree', differs: false, semantic: { available: true, note: null, changes: [] }, risks: [], files: [] });
  });
});
