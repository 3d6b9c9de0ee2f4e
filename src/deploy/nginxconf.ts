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

export function mainDirectives(text: string): MainDirectives {
  let pid: string | null = null;
  const errorLogs: string[] = [];
  for (const st of topLevelStatements(text)) {
    if (st[0] === 'pid' && st[1]) pid = st[1];
    if (st[0] === 'error_log' && st[1]) {
      const p = st[1];
      if (p === 'stderr' || p.startsWith('syslog:') || p.startsWith('memory:') || p === '/dev/null') continue;
      errorLogs.push(p);
    }
  }
  return { pid, errorLogs };
}
