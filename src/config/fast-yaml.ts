// A fast reader for the plain layout most gateway.yaml files are written in, used before the
// `yaml` package: block mappings and sequences, one-line flow collections (`{ a: b }`,
// `[a, b]`), plain and simply quoted scalars, comments. It gives what the `yaml` package's
// document gives for the same text (values typed by the YAML 1.2 core schema, each node's
// start offset), or null the moment the text holds anything else: non-ASCII or control
// characters (tabs, CR, BOM), directives and document markers, anchors, aliases and tags,
// block scalars, multi-line scalars or flow collections, empty values, escapes in double
// quotes, keys that are not plain words, scalars the core schema types as anything but a
// string, null, a boolean or a small decimal integer, and anything malformed. Null sends the
// text to the `yaml` package, which reports every syntax error with its position, so this
// path never decides what an error is. tests/unit/fast-yaml.test.ts checks both agree on
// every example and golden config.

export type FastNode =
  | { t: 'map'; o: number; pairs: [FastKey, FastNode][] }
  | { t: 'seq'; o: number; items: FastNode[] }
  | { t: 'scalar'; o: number; v: string | number | boolean | null; plain: boolean };
export interface FastKey {
  o: number;
  v: string;
}

interface Line {
  /** offset of the line's first character */
  off: number;
  /** leading spaces */
  ind: number;
  text: string;
}

const BAIL = Symbol('bail');
const bail = (): never => {
  throw BAIL;
};

const KEY_RE = /[A-Za-z_][A-Za-z0-9_./-]*/y;
const NULL_RE = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL_RE = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const SMALL_INT_RE = /^(?:0|[1-9][0-9]{0,14})$/;
// the core schema's other tags (int with a sign or leading zeros, octal, hex, floats, .inf, .nan)
const OTHER_TAG_RE = /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)$/;

/** A plain scalar's value under the core schema; bails on the tags this reader leaves to `yaml`. */
function typed(s: string): string | number | boolean | null {
  if (NULL_RE.test(s)) return null;
  if (BOOL_RE.test(s)) return s[0] === 't' || s[0] === 'T';
  if (SMALL_INT_RE.test(s)) return Number(s);
  if (OTHER_TAG_RE.test(s)) bail();
  return s;
}

/** `key:` at col (followed by a space or the end of the line): the key's end, else -1. */
function keyAt(text: string, col: number): number {
  KEY_RE.lastIndex = col;
  const m = KEY_RE.exec(text);
  if (!m) return -1;
  const end = col + m[0].length;
  if (text.charCodeAt(end) !== 58 /* : */) return -1;
  const next = text.charCodeAt(end + 1);
  return Number.isNaN(next) || next === 32 ? end : -1;
}

const isSpace = (text: string, i: number) => text.charCodeAt(i) === 32;

export function fastParse(text: string): FastNode | null {
  // printable ASCII and \n only: no tabs, CR, BOM or other characters YAML treats specially
  if (/[^\x20-\x7e\n]/.test(text)) return null;
  const lines: Line[] = [];
  let off = 0;
  for (const raw of text.split('\n')) {
    let ind = 0;
    while (ind < raw.length && raw.charCodeAt(ind) === 32) ind++;
    if (ind === 0 && (raw.startsWith('---') || raw.startsWith('...') || raw.startsWith('%'))) return null;
    if (ind < raw.length && raw[ind] !== '#') lines.push({ off, ind, text: raw });
    off += raw.length + 1;
  }
  if (!lines.length || lines[0].ind !== 0) return null;
  try {
    const [root, next] = parseMap(lines, 0, 0);
    return next === lines.length ? root : null;
  } catch (e) {
    if (e === BAIL) return null;
    throw e;
  }
}

/** After a value: only spaces, then the end of the line or ` # comment`. */
function restOfLine(text: string, p: number): void {
  const start = p;
  while (isSpace(text, p)) p++;
  if (p === text.length) return;
  if (text[p] === '#' && p > start) return;
  bail();
}

/** A block mapping whose first key is at column col of lines[i]; the following keys at indent col. */
function parseMap(lines: Line[], i: number, col: number): [FastNode, number] {
  const map: FastNode = { t: 'map', o: lines[i].off + col, pairs: [] };
  for (let first = true; i < lines.length; first = false) {
    const ln = lines[i];
    const text = ln.text;
    let c = col;
    if (!first) {
      if (ln.ind < col) break;
      if (ln.ind > col) bail();
      c = ln.ind;
    }
    const end = keyAt(text, c);
    if (end < 0 || end - c > 200) bail();
    const keyText = text.slice(c, end);
    if (typeof typed(keyText) !== 'string') bail();
    const key: FastKey = { o: ln.off + c, v: keyText };
    let p = end + 1;
    while (isSpace(text, p)) p++;
    let value: FastNode;
    if (p === text.length || (text[p] === '#' && p > end + 1)) {
      // the value is a block on the next lines: deeper, or a sequence at the key's own indent
      const nx = lines[i + 1];
      if (!nx) bail();
      if (nx.ind > col) [value, i] = parseBlock(lines, i + 1);
      else if (nx.ind === col && nx.text.startsWith('- ', col)) [value, i] = parseSeq(lines, i + 1, col);
      else return bail(); // an empty value
    } else {
      let q: number;
      [value, q] = parseInline(text, p, ln.off, false);
      restOfLine(text, q);
      i++;
    }
    map.pairs.push([key, value]);
  }
  return [map, i];
}

function parseBlock(lines: Line[], i: number): [FastNode, number] {
  const ln = lines[i];
  if (ln.text.startsWith('- ', ln.ind)) return parseSeq(lines, i, ln.ind);
  if (keyAt(ln.text, ln.ind) >= 0) return parseMap(lines, i, ln.ind);
  return bail();
}

/** A block sequence whose dashes are at column col. */
function parseSeq(lines: Line[], i: number, col: number): [FastNode, number] {
  const seq: FastNode = { t: 'seq', o: lines[i].off + col, items: [] };
  while (i < lines.length) {
    const ln = lines[i];
    const text = ln.text;
    if (ln.ind < col) break;
    if (ln.ind > col) bail();
    if (!text.startsWith('- ', col)) break;
    let c = col + 2;
    while (isSpace(text, c)) c++;
    if (c === text.length || text[c] === '#' || text[c] === '-') bail();
    if (keyAt(text, c) >= 0) {
      let item: FastNode;
      [item, i] = parseMap(lines, i, c);
      seq.items.push(item);
    } else {
      const [item, q] = parseInline(text, c, ln.off, false);
      restOfLine(text, q);
      seq.items.push(item);
      i++;
    }
  }
  return [seq, i];
}

/** A value that starts at p on one line: a flow collection, a quoted or a plain scalar. */
function parseInline(text: string, p: number, off: number, flow: boolean): [FastNode, number] {
  const ch = text[p];
  if (ch === '{' || ch === '[') return parseFlow(text, p, off);
  if (ch === "'") {
    let v = '';
    let q = p + 1;
    for (;;) {
      const close = text.indexOf("'", q);
      if (close < 0) bail();
      v += text.slice(q, close);
      if (text[close + 1] === "'") {
        v += "'";
        q = close + 2;
      } else {
        return [{ t: 'scalar', o: off + p, v, plain: false }, close + 1];
      }
    }
  }
  if (ch === '"') {
    const close = text.indexOf('"', p + 1);
    if (close < 0) bail();
    const v = text.slice(p + 1, close);
    if (v.includes('\\')) bail();
    return [{ t: 'scalar', o: off + p, v, plain: false }, close + 1];
  }
  // plain: not starting with an indicator ('-' only before a letter or digit: `- `, and in a
  // flow collection `-,` or `-]`, start a block sequence)
  if ('?:,[]{}#&*!|>\'"%@`'.includes(ch) || (ch === '-' && !/[A-Za-z0-9]/.test(text[p + 1] ?? ''))) bail();
  let q = p;
  let end = p; // after the last non-space character
  for (; q < text.length; q++) {
    const c = text[q];
    if (c === ' ') {
      if (text[q + 1] === '#') break;
      continue;
    }
    if (c === ':') {
      const n = text[q + 1];
      if (n === undefined || n === ' ' || (flow && (n === ',' || n === ']' || n === '}'))) bail();
    }
    if (flow) {
      if (c === ',' || c === ']' || c === '}') break;
      if (c === '[' || c === '{') bail();
    }
    end = q + 1;
  }
  return [{ t: 'scalar', o: off + p, v: typed(text.slice(p, end)), plain: true }, end];
}

/** `{ key: value, … }` or `[value, …]`, closed on the same line. */
function parseFlow(text: string, p: number, off: number): [FastNode, number] {
  const isMap = text[p] === '{';
  const close = isMap ? '}' : ']';
  const node: FastNode = isMap ? { t: 'map', o: off + p, pairs: [] } : { t: 'seq', o: off + p, items: [] };
  const skip = (q: number) => {
    while (isSpace(text, q)) q++;
    return q;
  };
  let q = skip(p + 1);
  if (text[q] === close) return [node, q + 1];
  for (;;) {
    if (node.t === 'map') {
      const end = keyAt(text, q);
      if (end < 0 || end - q > 200) bail();
      const keyText = text.slice(q, end);
      if (typeof typed(keyText) !== 'string') bail();
      const key: FastKey = { o: off + q, v: keyText };
      q = skip(end + 1);
      if (q >= text.length || text[q] === ',' || text[q] === '}' || text[q] === '#') bail();
      const [value, r] = parseInline(text, q, off, true);
      node.pairs.push([key, value]);
      q = r;
    } else if (node.t === 'seq') {
      if (q >= text.length || text[q] === ',' || text[q] === ']' || text[q] === '#') bail();
      const [item, r] = parseInline(text, q, off, true);
      node.items.push(item);
      q = r;
    }
    q = skip(q);
    if (text[q] === ',') {
      q = skip(q + 1);
      if (text[q] === close) bail(); // a trailing comma
      continue;
    }
    if (text[q] === close) return [node, q + 1];
    return bail();
  }
}
