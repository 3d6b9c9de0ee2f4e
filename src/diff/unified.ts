// Line diff (Myers' O(ND) algorithm) and unified-diff output, as `diff -u` / `git diff`
// print them. Generated files are a few hundred lines at most, so the simple variant that
// keeps one V array per edit distance is plenty.

export type EditOp = { op: 'equal' | 'delete' | 'insert'; line: string };

export interface SplitText {
  lines: string[];
  /** false when the text does not end with a newline (shown as "\ No newline at end of file") */
  eol: boolean;
}

export function splitLines(text: string): SplitText {
  if (text === '') return { lines: [], eol: true };
  const lines = text.split('\n');
  const eol = lines[lines.length - 1] === '';
  if (eol) lines.pop();
  return { lines, eol };
}

/** Shortest edit script turning `a` into `b`. */
export function diffLines(a: string[], b: string[]): EditOp[] {
  // trim the common prefix and suffix first: most edits touch a few lines of a long file
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const A = a.slice(pre, a.length - suf);
  const B = b.slice(pre, b.length - suf);
  const middle = myers(A, B);
  return [
    ...a.slice(0, pre).map((line) => ({ op: 'equal' as const, line })),
    ...middle,
    ...a.slice(a.length - suf).map((line) => ({ op: 'equal' as const, line })),
  ];
}

function myers(a: string[], b: string[]): EditOp[] {
  const n = a.length;
  const m = b.length;
  if (n === 0) return b.map((line) => ({ op: 'insert', line }));
  if (m === 0) return a.map((line) => ({ op: 'delete', line }));
  const max = n + m;
  const offset = max;
  let v = new Int32Array(2 * max + 2);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    trace.push(v.slice());
    const next = v.slice();
    for (let k = -d; k <= d; k += 2) {
      let x: number;
      if (k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1])) x = v[offset + k + 1];
      else x = v[offset + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      next[offset + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break;
      }
    }
    v = next;
  }
  trace.push(v);
  // walk back through the trace: trace[d + 1] holds the furthest x per diagonal after step d
  const ops: EditOp[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 2; d >= 0; d--) {
    const vd = trace[d];
    const k = x - y;
    let prevK: number;
    if (d === 0) prevK = 0;
    else if (k === -d || (k !== d && vd[offset + k - 1] < vd[offset + k + 1])) prevK = k + 1;
    else prevK = k - 1;
    const prevX = d === 0 ? 0 : vd[offset + prevK];
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ op: 'equal', line: a[x - 1] });
      x--;
      y--;
    }
    if (d > 0) {
      if (x === prevX) ops.push({ op: 'insert', line: b[y - 1] });
      else ops.push({ op: 'delete', line: a[x - 1] });
    }
    x = prevX;
    y = prevY;
  }
  return ops.reverse();
}

export interface UnifiedOptions {
  fromName: string;
  toName: string;
  context?: number;
}

/**
 * `diff -u` output for two texts; '' when they are equal. A missing side (file added or
 * removed) is passed as null and named /dev/null, as git does.
 */
export function unifiedDiff(from: string | null, to: string | null, opts: UnifiedOptions): string {
  if (from === to) return '';
  const context = opts.context ?? 3;
  const A = tokens(from ?? '');
  const B = tokens(to ?? '');
  const ops = diffLines(A, B);
  const out: string[] = [`--- ${from === null ? '/dev/null' : opts.fromName}`, `+++ ${to === null ? '/dev/null' : opts.toName}`];
  // positions of each op in a and b
  const pos: { a: number; b: number }[] = [];
  let ia = 0;
  let ib = 0;
  for (const o of ops) {
    pos.push({ a: ia, b: ib });
    if (o.op !== 'insert') ia++;
    if (o.op !== 'delete') ib++;
  }
  const changed = ops.map((o, i) => (o.op === 'equal' ? -1 : i)).filter((i) => i >= 0);
  let i = 0;
  while (i < changed.length) {
    const start = Math.max(0, changed[i] - context);
    let end = changed[i];
    let j = i;
    while (j + 1 < changed.length && changed[j + 1] - end - 1 <= 2 * context) {
      j++;
      end = changed[j];
    }
    end = Math.min(ops.length - 1, end + context);
    const body: string[] = [];
    let aCount = 0;
    let bCount = 0;
    for (let k = start; k <= end; k++) {
      const o = ops[k];
      const sign = o.op === 'equal' ? ' ' : o.op === 'delete' ? '-' : '+';
      if (o.line.endsWith(NO_EOL)) body.push(`${sign}${o.line.slice(0, -NO_EOL.length)}`, '\\ No newline at end of file');
      else body.push(`${sign}${o.line}`);
      if (o.op !== 'insert') aCount++;
      if (o.op !== 'delete') bCount++;
    }
    const aStart = aCount ? pos[start].a + 1 : pos[start].a;
    const bStart = bCount ? pos[start].b + 1 : pos[start].b;
    out.push(`@@ -${range(aStart, aCount)} +${range(bStart, bCount)} @@`, ...body);
    i = j + 1;
  }
  return `${out.join('\n')}\n`;
}

// A last line without newline differs from the same text with one (as in diff(1)): it is
// compared with this suffix and printed with the "\ No newline at end of file" marker.
const NO_EOL = '\u0000<no-eol>';

function tokens(text: string): string[] {
  const { lines, eol } = splitLines(text);
  if (!eol && lines.length) lines[lines.length - 1] += NO_EOL;
  return lines;
}

function range(start: number, count: number): string {
  return count === 1 ? `${start}` : `${start},${count}`;
}
