// Route regexes are compiled by nginx with PCRE2 (10.42+, no UTF mode). JavaScript's engine
// is not PCRE2: it rejects valid PCRE (`(?s)`, `a++`, `\Q…\E`, `[[:alpha:]]`) and accepts
// what PCRE2 refuses (`\u`, unbounded lookbehind, `\8` with no 8th group, `\i`). So the
// pattern is scanned here with PCRE2's rules (escapes, inline options, verbs, POSIX
// classes, backreferences, lookbehind length), rewritten into an equivalent-shaped
// JavaScript pattern, and only then given to RegExp (unicode mode) for the structure
// (balanced groups and classes, quantifiers that follow something). The unit test
// tests/unit/pcre.test.ts holds this against real nginx -t.

const KNOWN_LETTER_ESCAPES = new Set('abBcdDeEfgGhHkKnNopPQrRsStvVwWxXzZAC'.split(''));
const POSIX = new Set(['alpha', 'digit', 'alnum', 'ascii', 'blank', 'cntrl', 'graph', 'lower', 'print', 'punct', 'space', 'upper', 'word', 'xdigit']);
const VERBS = /^\((\*(?:UTF|UTF8|UCP|NO_AUTO_POSSESS|NO_START_OPT|NO_DOTSTAR_ANCHOR|NO_JIT|NOTEMPTY|NOTEMPTY_ATSTART|CR|LF|CRLF|ANYCRLF|ANY|NUL|BSR_ANYCRLF|BSR_UNICODE|LIMIT_(?:HEAP|MATCH|DEPTH|RECURSION)=[0-9]+|ACCEPT|FAIL|F|COMMIT|PRUNE(?::[^)]*)?|SKIP(?::[^)]*)?|THEN(?::[^)]*)?|MARK:[^)]+|:[^)]+))\)/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_LOOKBEHIND = 255;
const INF = Number.POSITIVE_INFINITY;

const lit = (ch: string) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
const litAny = (ch: string) => (ch.charCodeAt(0) < 256 ? lit(ch) : `\\u{${ch.codePointAt(0)!.toString(16)}}`);

class PcreError extends Error {}

/** JavaScript's structural errors in PCRE2's words */
const PCRE_WORDING: Record<string, string> = {
  'Unterminated group': 'missing closing parenthesis',
  "Unmatched ')'": 'unmatched closing parenthesis',
  'Nothing to repeat': 'quantifier does not follow a repeatable item',
  'Invalid character class': 'invalid range in character class',
  'Range out of order in character class': 'range out of order in character class',
};

interface Scan {
  js: string;
  groups: number;
  names: Set<string>;
  refs: { n?: number; name?: string }[];
  lookbehinds: string[];
}

function quantifierAt(s: string, i: number): RegExpExecArray | null {
  return /^\{(?:[0-9]+(?:,[0-9]*)?|,[0-9]+)\}/.exec(s.slice(i));
}

function scan(re: string): Scan {
  let js = '';
  let i = 0;
  let extended = false;
  let groups = 0;
  const names = new Set<string>();
  const refs: { n?: number; name?: string }[] = [];
  const lookbehinds: string[] = [];
  const lbStack: { depth: number; start: number }[] = [];
  let depth = 0;
  const n = re.length;
  // leading verbs: (*UTF), (*CR), …
  const fail = (msg: string): never => {
    throw new PcreError(msg);
  };
  const escape = (inClass: boolean): string => {
    const c = re[i + 1];
    if (c === undefined) fail('\\ at end of pattern');
    if (/[uUlL]/.test(c) || (c === 'N' && re[i + 2] === '{')) fail('PCRE2 does not support \\F, \\L, \\l, \\N{name}, \\U, or \\u');
    if (!/[A-Za-z0-9]/.test(c)) {
      i += 2;
      return litAny(c);
    }
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+/.exec(re.slice(i + 1))![0];
      if (c === '0') {
        const oct = /^0[0-7]{0,2}/.exec(re.slice(i + 1))![0];
        i += 1 + oct.length;
        return `\\x${(parseInt(oct, 8) & 0xff).toString(16).padStart(2, '0')}`;
      }
      if (inClass) {
        const oct = /^[0-7]{1,3}/.exec(re.slice(i + 1));
        if (!oct) fail('\\8 and \\9 are not octal escapes inside a class');
        i += 1 + oct![0].length;
        return 'a';
      }
      const v = Number(m);
      if (v < 10) {
        refs.push({ n: v });
        i += 1 + m.length;
        return '(?:)';
      }
      // \10 and up: a backreference when that group exists, else octal
      refs.push({ n: -v });
      i += 1 + m.length;
      return '(?:)';
    }
    if (!KNOWN_LETTER_ESCAPES.has(c)) fail(`unrecognized character follows \\ (\\${c})`);
    switch (c) {
      case 'x': {
        const br = /^x\{([0-9a-fA-F]*)\}/.exec(re.slice(i + 1));
        if (br) {
          if (!br[1] || parseInt(br[1], 16) > 0xff) fail('character code point value in \\x{} or \\o{} is too large');
          i += 1 + br[0].length;
          return 'a';
        }
        const h = /^x[0-9a-fA-F]{0,2}/.exec(re.slice(i + 1))![0];
        i += 1 + h.length;
        return 'a';
      }
      case 'o': {
        const br = /^o\{([0-7]+)\}/.exec(re.slice(i + 1));
        if (!br) fail('missing opening brace after \\o');
        if (parseInt(br![1], 8) > 0xff) fail('character code point value in \\x{} or \\o{} is too large');
        i += 1 + br![0].length;
        return 'a';
      }
      case 'c': {
        const x = re[i + 2];
        if (x === undefined) fail('\\c at end of pattern');
        if (x.charCodeAt(0) < 32 || x.charCodeAt(0) > 126) fail('\\c must be followed by a printable ASCII character');
        i += 3;
        return 'a';
      }
      case 'p':
      case 'P': {
        const br = /^[pP](\{\^?[A-Za-z0-9_ &=-]+\}|[A-Za-z])/.exec(re.slice(i + 1));
        if (!br) fail('malformed \\P or \\p sequence');
        i += 1 + br![0].length;
        return 'a';
      }
      case 'g': {
        const br = /^g(?:\{(-?[0-9]+|[A-Za-z_][A-Za-z0-9_]*)\}|<([^>]*)>|'([^']*)'|(-?[0-9]+))/.exec(re.slice(i + 1));
        if (!br) fail('\\g is not followed by a braced, angle-bracketed, or quoted name/number or by a plain number');
        const v = br![1] ?? br![2] ?? br![3] ?? br![4];
        if (/^-?[0-9]+$/.test(v)) refs.push({ n: Number(v) < 0 ? groups + 1 + Number(v) : Number(v) });
        else refs.push({ name: v });
        i += 1 + br![0].length;
        return '(?:)';
      }
      case 'k': {
        const br = /^k(?:<([^>]*)>|'([^']*)'|\{([^}]*)\})/.exec(re.slice(i + 1));
        if (!br) fail('\\k is not followed by a braced, angle-bracketed, or quoted name');
        refs.push({ name: br![1] ?? br![2] ?? br![3] });
        i += 1 + br![0].length;
        return '(?:)';
      }
      case 'Q': {
        const end = re.indexOf('\\E', i + 2);
        const body = end < 0 ? re.slice(i + 2) : re.slice(i + 2, end);
        i = end < 0 ? n : end + 2;
        return inClass ? [...body].map(litAny).join('') : `(?:${[...body].map(litAny).join('')})`;
      }
      case 'E':
        i += 2;
        return '';
      case 'A':
      case 'z':
      case 'Z':
      case 'G':
      case 'K':
        if (inClass) fail(`escape sequence \\${c} is invalid in a character class`);
        i += 2;
        return '(?:)';
      case 'R':
      case 'X':
        if (inClass) fail(`escape sequence \\${c} is invalid in a character class`);
        i += 2;
        return '(?:a|aa)';
      case 'B':
        if (inClass) fail('escape sequence \\B is invalid in a character class');
        i += 2;
        return '\\B';
      case 'N':
      case 'C':
      case 'h':
      case 'H':
      case 'v':
      case 'V':
      case 'e':
      case 'a':
        i += 2;
        return inClass ? 'a' : '[a]';
      default:
        i += 2;
        return `\\${c}`; // b d D f n r s S t w W
    }
  };

  while (i < n) {
    const ch = re[i];
    if (extended) {
      if (/\s/.test(ch)) {
        i++;
        continue;
      }
      if (ch === '#') {
        while (i < n && re[i] !== '\n') i++;
        continue;
      }
    }
    if (ch === '\\') {
      js += escape(false);
      continue;
    }
    if (ch === '[') {
      // a class: `]` first is literal, POSIX [:name:] inside, escapes as above
      const posixOutside = /^\[:([a-z]+):\]/.exec(re.slice(i));
      if (posixOutside) fail('POSIX named classes are supported only within a class');
      let k = i + 1;
      let out = '[';
      if (re[k] === '^') {
        out += '^';
        k++;
      }
      let first = true;
      let closed = false;
      while (k < n) {
        const c = re[k];
        if (c === ']' && !first) {
          closed = true;
          k++;
          break;
        }
        first = false;
        if (c === '[' && /^\[[:.=]/.test(re.slice(k))) {
          const m = /^\[([:.=])(\^?)([A-Za-z]*)\1\]/.exec(re.slice(k));
          if (m) {
            if (m[1] !== ':') fail('POSIX collating elements are not supported');
            if (!POSIX.has(m[3])) fail('unknown POSIX class name');
            out += 'a';
            k += m[0].length;
            continue;
          }
        }
        if (c === '\\') {
          i = k;
          out += escape(true);
          k = i;
          continue;
        }
        out += /[A-Za-z0-9]/.test(c) ? c : c === '-' ? '-' : litAny(c);
        k++;
      }
      if (!closed) fail('missing terminating ] for character class');
      js += `${out}]`;
      i = k;
      continue;
    }
    if (ch === '(') {
      const rest = re.slice(i);
      const verb = VERBS.exec(rest);
      if (verb) {
        js += '(?:)';
        i += verb[0].length;
        continue;
      }
      if (rest.startsWith('(*')) fail('(*VERB) not recognized or malformed');
      if (rest.startsWith('(?#')) {
        const end = re.indexOf(')', i);
        if (end < 0) fail('missing ) at end of (?# comment');
        i = end + 1;
        continue;
      }
      const opts = /^\(\?([imnsxJU^-]*)(\)|:)/.exec(rest);
      if (opts) {
        if (/x/.test(opts[1].split('-')[0])) extended = true;
        if (/x/.test(opts[1].split('-')[1] ?? '')) extended = false;
        if (opts[2] === ')') {
          i += opts[0].length;
          continue;
        }
        js += '(?:';
        depth++;
        i += opts[0].length;
        continue;
      }
      const named = /^\(\?(?:P?<([^>=!]*)>|'([^']*)')/.exec(rest);
      if (named) {
        const nm = named[1] ?? named[2];
        if (!NAME.test(nm)) fail(`subpattern name expected (got "${nm}")`);
        if (nm.length > 32) fail('subpattern name is too long (maximum 32 code units)');
        if (names.has(nm)) fail('two named subpatterns have the same name (PCRE2_DUPNAMES not set)');
        names.add(nm);
        groups++;
        js += '(';
        depth++;
        i += named[0].length;
        continue;
      }
      const backrefNamed = /^\(\?P=([^)]*)\)/.exec(rest);
      if (backrefNamed) {
        refs.push({ name: backrefNamed[1] });
        js += '(?:)';
        i += backrefNamed[0].length;
        continue;
      }
      const recursion = /^\(\?(R|[+-]?[0-9]+|&([^)]*)|P>([^)]*))\)/.exec(rest);
      if (recursion) {
        const v = recursion[1];
        if (v !== 'R') {
          if (recursion[2] !== undefined || recursion[3] !== undefined) refs.push({ name: recursion[2] ?? recursion[3] });
          else refs.push({ n: /^[+-]/.test(v) ? groups + Number(v) + (v.startsWith('+') ? 0 : 1) : Number(v) });
        }
        js += '(?:)';
        i += recursion[0].length;
        continue;
      }
      const cond = /^\(\?\((?:[0-9]+|<[A-Za-z_][A-Za-z0-9_]*>|'[A-Za-z_][A-Za-z0-9_]*'|R[0-9]*|R&[A-Za-z_][A-Za-z0-9_]*|DEFINE|[A-Za-z_][A-Za-z0-9_]*)\)/.exec(rest);
      if (cond) {
        const c = cond[0].slice(3, -1).replace(/^[<']|[>']$/g, '');
        if (/^[0-9]+$/.test(c)) refs.push({ n: Number(c) });
        else if (!/^(R[0-9]*|R&.*|DEFINE)$/.test(c)) refs.push({ name: c });
        js += '(?:';
        depth++;
        i += cond[0].length;
        continue;
      }
      if (rest.startsWith('(?(')) {
        // an assertion condition: (?(?=a)b|c)
        js += '(?:';
        depth++;
        i += 2;
        continue;
      }
      if (rest.startsWith('(?>') || rest.startsWith('(?|')) {
        js += '(?:';
        depth++;
        i += 3;
        continue;
      }
      const lb = /^\(\?(<=|<!|\*<=|\*<!)/.exec(rest);
      if (lb) {
        // assertions become plain groups for the structural check: PCRE2 lets a quantifier
        // follow an assertion, JavaScript's unicode mode does not
        lbStack.push({ depth, start: js.length + 3 });
        js += '(?:';
        depth++;
        i += lb[0].length;
        continue;
      }
      if (/^\(\?[=!:]/.test(rest)) {
        js += '(?:';
        depth++;
        i += 3;
        continue;
      }
      if (rest.startsWith('(?')) fail('unrecognized character after (? or (?-');
      groups++;
      js += '(';
      depth++;
      i++;
      continue;
    }
    if (ch === ')') {
      depth--;
      const top = lbStack[lbStack.length - 1];
      if (top && top.depth === depth) {
        lookbehinds.push(js.slice(top.start));
        lbStack.pop();
      }
      js += ')';
      i++;
      continue;
    }
    if (ch === '{') {
      const q = quantifierAt(re, i);
      if (q) {
        const nums = q[0].slice(1, -1).split(',').filter(Boolean).map(Number);
        if (nums.some((x) => x > 65535)) fail('number too big in {} quantifier');
        js += q[0].startsWith('{,') ? `{0${q[0].slice(1)}` : q[0];
        i += q[0].length;
      } else {
        js += lit('{');
        i++;
      }
      if (re[i] === '+') i++; // possessive
      continue;
    }
    if (ch === '}' || ch === ']') {
      js += lit(ch);
      i++;
      continue;
    }
    if ((ch === '*' || ch === '+' || ch === '?') && re[i + 1] === '+') {
      js += ch;
      i += 2; // possessive quantifier: the same shape as the greedy one
      continue;
    }
    js += /[A-Za-z0-9^$.|*+?]/.test(ch) ? ch : litAny(ch);
    i++;
  }
  return { js, groups, names, refs, lookbehinds };
}

/** Longest match of a (translated, structurally valid) pattern fragment; Infinity when unbounded. */
function maxLength(src: string): number {
  let i = 0;
  const alt = (): number => {
    let best = seq();
    while (src[i] === '|') {
      i++;
      best = Math.max(best, seq());
    }
    return best;
  };
  const seq = (): number => {
    let total = 0;
    while (i < src.length && src[i] !== '|' && src[i] !== ')') {
      let atom = 1;
      const c = src[i];
      if (c === '(') {
        const look = /^\(\?(?:<=|<!|=|!)/.exec(src.slice(i));
        i += src.startsWith('(?:', i) ? 3 : look ? look[0].length : 1;
        const inner = alt();
        i++; // )
        atom = look ? 0 : inner;
      } else if (c === '[') {
        i++;
        if (src[i] === '^') i++;
        while (i < src.length && src[i] !== ']') i += src[i] === '\\' ? 2 : 1;
        i++;
      } else if (c === '\\') {
        const m = /^\\(x[0-9a-f]{2}|u\{[0-9a-f]+\}|.)/.exec(src.slice(i))!;
        atom = /^[bB]$/.test(m[1]) ? 0 : 1;
        i += m[0].length;
      } else if (c === '^' || c === '$') {
        atom = 0;
        i++;
      } else {
        i++;
      }
      const qm = /^(?:\*|\+|\?|\{([0-9]+)(,([0-9]*))?\})\??/.exec(src.slice(i));
      if (qm) {
        i += qm[0].length;
        if (qm[0][0] === '*' || qm[0][0] === '+') atom = atom === 0 ? 0 : INF;
        else if (qm[0][0] === '?') atom = atom;
        else if (qm[2] === undefined) atom *= Number(qm[1]);
        else atom = qm[3] === '' ? (atom === 0 ? 0 : INF) : atom * Number(qm[3]);
      }
      total += atom;
    }
    return total;
  };
  return alt();
}

/**
 * Why nginx (PCRE2) would refuse the route regex, or null when it compiles. Messages follow
 * PCRE2's own wording where there is one.
 */
export function pcreProblem(re: string): string | null {
  let s: Scan;
  try {
    s = scan(re);
  } catch (e) {
    if (e instanceof PcreError) return e.message;
    throw e;
  }
  try {
    new RegExp(s.js, 'u');
  } catch (e) {
    const msg = (e as Error).message.replace(/^Invalid regular expression: \/.*\/u?: /s, '');
    return PCRE_WORDING[msg] ?? msg;
  }
  for (const r of s.refs) {
    if (r.name !== undefined && !s.names.has(r.name)) return `reference to non-existent subpattern "${r.name}"`;
    if (r.n !== undefined && r.n > 0 && r.n > s.groups) return 'reference to non-existent subpattern';
    if (r.n !== undefined && r.n < 0 && -r.n > s.groups && !/^[0-7]+$/.test(String(-r.n))) return 'reference to non-existent subpattern';
  }
  for (const lb of s.lookbehinds) {
    const len = maxLength(lb);
    if (len === INF) return 'length of lookbehind assertion is not limited';
    if (len > MAX_LOOKBEHIND) return `lookbehind assertion is too long (longest match ${len}; PCRE2 allows ${MAX_LOOKBEHIND})`;
  }
  return null;
}
