// Output formats on hand-made results: markdown escaping, fences, truncation; text markers.
import { describe, expect, it } from 'vitest';
import { formatMarkdown, formatText, MARKDOWN_DIFF_BUDGET, mdEscape, type DiffResult } from '../../src/diff/format.ts';

function result(over: Partial<DiffResult> = {}): DiffResult {
  return {
    base: 'origin/main (0123456789ab)',
    head: 'working tree',
    differs: true,
    semantic: {
      available: true,
      note: null,
      changes: [
        { section: 'limits', kind: 'changed', subject: 'rate limit api', text: 'rate limit api: 10r/s → 50r/s (loosened)', risk: 'rate-limit-loosened' },
        { section: 'routes', kind: 'added', subject: 'route embed', text: 'route embed added: POST = /v1/embeddings → upstream llm', risk: null },
        { section: 'routes', kind: 'removed', subject: 'route old', text: 'route old removed (was any method /old/* → upstream api)', risk: null },
      ],
    },
    risks: [],
    files: [{ path: 'conf.d/10-limits.conf', status: 'modified', added: 1, removed: 1, diff: '--- a/conf.d/10-limits.conf\n+++ b/conf.d/10-limits.conf\n@@ -1 +1 @@\n-a\n+b\n' }],
    ...over,
  };
}

describe('formats', () => {
  it('text: markers per change kind, risks marked, sections in order', () => {
    const r = result();
    r.risks = [r.semantic.changes[0]];
    const t = formatText(r);
    expect(t).toContain('Routes\n  + route embed added: POST = /v1/embeddings → upstream llm\n  - route old removed');
    expect(t).toContain('Limits\n  ⚠ RISK: rate limit api: 10r/s → 50r/s (loosened)\n');
    expect(t.indexOf('Routes')).toBeLessThan(t.indexOf('Limits'));
    expect(t).toContain('Generated nginx config: 1 file differs (+1 -1)\n  M conf.d/10-limits.conf (+1 -1)\n');
  });

  it('markdown: escapes inline markup and picks a fence longer than any backtick run', () => {
    expect(mdEscape('route api: /api/* → upstream my_api <b>')).toBe('route api: /api/\\* → upstream my\\_api \\<b\\>');
    const md = formatMarkdown(
      result({ files: [{ path: 'x.conf', status: 'modified', added: 1, removed: 0, diff: '--- a/x.conf\n+++ b/x.conf\n@@ -0,0 +1 @@\n+# ```` odd\n' }] }),
    );
    expect(md).toContain('`````diff\n--- a/x.conf');
    expect(md).toContain('\n`````\n');
  });

  it('markdown: truncates a diff too large for a pull-request comment', () => {
    const lines = Array.from({ length: 5000 }, (_, i) => `+    server 10.0.${Math.floor(i / 250)}.${i % 250}:80;`);
    const diff = `--- a/big.conf\n+++ b/big.conf\n@@ -0,0 +1,5000 @@\n${lines.join('\n')}\n`;
    const md = formatMarkdown(result({ files: [{ path: 'big.conf', status: 'added', added: 5000, removed: 0, diff }] }));
    expect(md.length).toBeLessThan(MARKDOWN_DIFF_BUDGET + 5000);
    expect(md).toMatch(/_Diff truncated \(\d+ more lines\); run `gatewayctl diff` locally for the rest\._/);
    expect(md).toMatch(/\n```\n\n_Diff truncated/);
  });

  it('says when the semantic summary is unavailable or empty', () => {
    const na = result({ semantic: { available: false, note: '/srv/gw has no model.json', changes: [] } });
    expect(formatText(na)).toContain('Semantic summary unavailable: /srv/gw has no model.json; showing the generated-file diff only.');
    expect(formatMarkdown(na)).toContain('_Semantic summary unavailable: /srv/gw has no model.json; the generated-file diff is below._');
    const none = result({ differs: false, semantic: { available: true, note: null, changes: [] }, files: [] });
    expect(formatText(none)).toContain('No semantic changes.\n\nGenerated nginx config: identical');
    expect(formatMarkdown(none)).not.toContain('<details>');
  });
});
