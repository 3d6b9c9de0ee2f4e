// Minimal reader for the main-context directives deploy needs from a built nginx.conf
// (`pid`, `error_log`). Not a full parser: it tokenizes quotes, comments and braces well
// enough to tell top-level statements from block contents.

export interface MainDirectives {
  pid: string | null; // as written, relative to the nginx prefix unless absolute
  errorLogs: string[]; // file paths only (stderr / syslog: / memory: are left out)
}

export function topLevelStatements(text: string): string[][] {
  const out: string[][] = [];
  let depth = 0;
  let cur: string[] = [];
  let tok = '';
  let hasTok = false;
  const flush = () => {
    if (hasTok) cur.push(tok);
    tok = '';
    hasTok = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '#') {
      flush();
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const q = c;
      hasTok = true;
      i++;
      while (i < text.length && text[i] !== q) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        tok += text[i];
        i++;
      }
      continue;
    }
    if (/\s/.test(c)) {
      flush();
      continue;
    }
    if (c === ';') {
      flush();
      if (depth === 0 && cur.length) out.push(cur);
      cur = [];
      continue;
    }
    if (c === '{') {
      flush();
      if (depth === 0 && cur.length) out.push(cur);
      cur = [];
      depth++;
      continue;
    }
    if (c === '}') {
      flush();
      cur = [];
      depth = Math.max(0, depth - 1);
      continue;
    }
    tok += c;
    hasTok = true;
  }
  return out;
}

/** An error_log target nginx writes to a file (not stderr, syslog:, memory: or /dev/null). */
export function isErrorLogFile(p: string): boolean {
  return !(p === 'stderr' || p.startsWith('syslog:') || p.startsWith('memory:') || p === '/dev/null');
}

export function mainDirectives(text: string): MainDirectives {
  let pid: string | null = null;
  const errorLogs: string[] = [];
  for (const st of topLevelStatements(text)) {
    if (st[0] === 'pid' && st[1]) pid = st[1];
    if (st[0] === 'error_log' && st[1]) {
      if (isErrorLogFile(st[1])) errorLogs.push(st[1]);
    }
  }
  return { pid, errorLogs };
}

export interface ConfToken {
  text: string; // unquoted value
  start: number; // offsets in the source, quotes included
  end: number;
  quoted: boolean;
}

export interface ConfStatement {
  words: ConfToken[]; // directive name first
  blocks: string[]; // names of the enclosing blocks, outermost first (within this file)
  opens: boolean; // ends with `{` rather than `;`
}

/**
 * Every statement of one config file with source offsets and its enclosing blocks, for
 * edits that must touch exactly one directive's arguments (see shadow.ts). Same tokenizing
 * rules as topLevelStatements: quotes, backslash escapes, comments, braces.
 */
export function statements(text: string): ConfStatement[] {
  const out: ConfStatement[] = [];
  const stack: string[] = [];
  let cur: ConfToken[] = [];
  let tok = '';
  let start = -1;
  let quoted = false;
  const flush = (end: number) => {
    if (start >= 0) cur.push({ text: tok, start, end, quoted });
    tok = '';
    start = -1;
    quoted = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '#' && start < 0) {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if ((c === '"' || c === "'") && start < 0) {
      const q = c;
      start = i;
      quoted = true;
      i++;
      while (i < text.length && text[i] !== q) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        tok += text[i];
        i++;
      }
      flush(i + 1);
      continue;
    }
    if (/\s/.test(c) || c === ';' || c === '{' || c === '}') {
      flush(i);
      if (c === ';' || c === '{') {
        if (cur.length) out.push({ words: cur, blocks: [...stack], opens: c === '{' });
        if (c === '{') stack.push(cur[0]?.text ?? '');
        cur = [];
      } else if (c === '}') {
        cur = [];
        stack.pop();
      }
      continue;
    }
    if (start < 0) start = i;
    tok += c;
  }
  return out;
}

/** Apply [start, end, replacement] edits (non-overlapping) to text. */
export function applyEdits(text: string, edits: [number, number, string][]): string {
  let out = text;
  for (const [s, e, r] of [...edits].sort((a, b) => b[0] - a[0])) out = out.slice(0, s) + r + out.slice(e);
  return out;
}
