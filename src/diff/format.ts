// Output formats for a DiffResult: text (terminal, optional colour), json (machines) and
// markdown (a pull-request comment: risks first, the unified diff folded in <details>).
import type { FileDiff } from './files.ts';
import { SECTIONS, type Change } from './semantic.ts';

export interface DiffResult {
  base: string; // label of the base side
  head: string; // label of the head side
  /** generated config differs (header lines and manifest checksums ignored) */
  differs: boolean;
  semantic: { available: boolean; note: string | null; changes: Change[] };
  risks: Change[];
  files: FileDiff[];
}

export type Format = 'text' | 'json' | 'markdown';

const marker = (c: Change) => (c.kind === 'added' ? '+' : c.kind === 'removed' ? '-' : '~');

function filesSummary(files: FileDiff[]): string {
  const plus = files.reduce((n, f) => n + f.added, 0);
  const minus = files.reduce((n, f) => n + f.removed, 0);
  return `${files.length} file${files.length === 1 ? '' : 's'} differ${files.length === 1 ? 's' : ''} (+${plus} -${minus})`;
}

function grouped(changes: Change[]): { title: string; changes: Change[] }[] {
  return SECTIONS.map((s) => ({ title: s.title, changes: changes.filter((c) => c.section === s.id) })).filter((g) => g.changes.length);
}

// ---------------------------------------------------------------------------------------
// text

const SGR = { bold: '1', red: '31', green: '32', yellow: '33', cyan: '36', dim: '2' } as const;
type Paint = (style: keyof typeof SGR, s: string) => string;

export function formatText(r: DiffResult, opts: { color?: boolean } = {}): string {
  const paint: Paint = opts.color ? (style, s) => `\x1b[${SGR[style]}m${s}\x1b[0m` : (_style, s) => s;
  const out: string[] = [];
  out.push(paint('bold', `gatewayctl diff: ${r.base} → ${r.head}`), '');
  if (!r.semantic.available) {
    out.push(`Semantic summary unavailable: ${r.semantic.note ?? 'no model for the base'}; showing the generated-file diff only.`);
  } else if (!r.semantic.changes.length) {
    out.push('No semantic changes.');
  } else {
    const n = r.risks.length;
    if (n) out.push(paint('yellow', `⚠ ${n} risky change${n === 1 ? '' : 's'} (marked RISK below)`), '');
    for (const g of grouped(r.semantic.changes)) {
      out.push(paint('bold', g.title));
      for (const c of g.changes) {
        if (c.risk) out.push(`  ${paint('yellow', `⚠ RISK: ${c.text}`)}`);
        else out.push(`  ${marker(c)} ${c.text}`);
      }
    }
  }
  out.push('');
  if (!r.files.length) {
    out.push('Generated nginx config: identical (header lines with the source hash ignored).');
    return `${out.join('\n')}\n`;
  }
  out.push(paint('bold', `Generated nginx config: ${filesSummary(r.files)}`));
  for (const f of r.files) out.push(`  ${f.status === 'added' ? 'A' : f.status === 'removed' ? 'D' : 'M'} ${f.path} (+${f.added} -${f.removed})`);
  for (const f of r.files) {
    out.push('');
    if (!f.diff) {
      out.push(`Binary file ${f.path} differs`);
      continue;
    }
    for (const line of f.diff.replace(/\n$/, '').split('\n')) out.push(colorDiffLine(line, paint));
  }
  return `${out.join('\n')}\n`;
}

function colorDiffLine(line: string, paint: Paint): string {
  if (line.startsWith('+++') || line.startsWith('---')) return paint('bold', line);
  if (line.startsWith('@@')) return paint('cyan', line);
  if (line.startsWith('+')) return paint('green', line);
  if (line.startsWith('-')) return paint('red', line);
  return line;
}

// ---------------------------------------------------------------------------------------
// json

export function formatJson(r: DiffResult): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------
// markdown

/** GitHub rejects comments over 65536 characters; keep the diff well below that. */
export const MARKDOWN_DIFF_BUDGET = 50_000;

export function mdEscape(s: string): string {
  return s.replace(/[\\`*_{}[\]<>|#~]/g, (c) => `\\${c}`);
}

function fence(body: string): string {
  const longest = Math.max(2, ...[...body.matchAll(/`+/g)].map((m) => m[0].length));
  return '`'.repeat(longest + 1);
}

export function formatMarkdown(r: DiffResult): string {
  const out: string[] = [];
  out.push('### gatewayctl diff', '', `\`${r.base}\` → \`${r.head}\``, '');
  if (r.risks.length) {
    const n = r.risks.length;
    out.push('> [!WARNING]', `> **⚠ ${n} risky change${n === 1 ? '' : 's'}**`, '>');
    for (const c of r.risks) out.push(`> - ${mdEscape(c.text)}`);
    out.push('');
  }
  if (!r.semantic.available) {
    out.push(`_Semantic summary unavailable: ${mdEscape(r.semantic.note ?? 'no model for the base')}; the generated-file diff is below._`, '');
  } else if (!r.semantic.changes.length) {
    out.push('No semantic changes.', '');
  } else {
    for (const g of grouped(r.semantic.changes)) {
      out.push(`**${g.title}**`, '');
      for (const c of g.changes) out.push(c.risk ? `- ⚠ **RISK:** ${mdEscape(c.text)}` : `- ${mdEscape(c.text)}`);
      out.push('');
    }
  }
  if (!r.files.length) {
    out.push('Generated nginx config: identical (header lines with the source hash ignored).');
    return `${out.join('\n')}\n`;
  }
  let body = r.files.map((f) => f.diff || `Binary file ${f.path} differs\n`).join('');
  let note = '';
  if (body.length > MARKDOWN_DIFF_BUDGET) {
    const cut = body.lastIndexOf('\n', MARKDOWN_DIFF_BUDGET);
    const dropped = body.slice(cut + 1).split('\n').length - 1;
    body = body.slice(0, cut + 1);
    note = `\n_Diff truncated (${dropped} more lines); run \`gatewayctl diff\` locally for the rest._\n`;
  }
  const f = fence(body);
  out.push(
    '<details>',
    `<summary>Generated nginx config: ${filesSummary(r.files)}</summary>`,
    '',
    ...r.files.map((x) => `- \`${x.path}\` ${x.status} (+${x.added} -${x.removed})`),
    '',
    `${f}diff`,
    body.replace(/\n$/, ''),
    f,
    note,
    '</details>',
  );
  return `${out.join('\n')}\n`;
}

export function formatResult(r: DiffResult, format: Format, opts: { color?: boolean } = {}): string {
  if (format === 'json') return formatJson(r);
  if (format === 'markdown') return formatMarkdown(r);
  return formatText(r, opts);
}
