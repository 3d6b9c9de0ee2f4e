// `nginx -t`: test a config in a prefix and parse nginx's diagnostics (stderr and error-log
// forms) into file/line/message records.

import path from 'node:path';
import { execa } from 'execa';
import type { NginxLocation } from './locate.ts';
import { DEFAULT_PID_FILE, declaredPid } from './pid.ts';

export interface ConfigError {
  level: 'emerg' | 'alert' | 'crit' | 'error' | 'warn';
  /** File nginx blamed (absolute as nginx prints it), or null for errors without a location. */
  file: string | null;
  line: number | null;
  message: string; // without the "in file:line" suffix
}

export interface ConfigTestResult {
  ok: boolean;
  /** Combined stdout+stderr of `nginx -t`. */
  output: string;
  /** emerg/alert/crit/error lines (warnings are in `warnings`). */
  errors: ConfigError[];
  warnings: ConfigError[];
}

/**
 * Parse nginx diagnostics, both the stderr form (`nginx: [emerg] msg in /f.conf:12`) and
 * the error-log form (`2024/01/01 00:00:00 [emerg] 12#12: msg in /f.conf:12`).
 */
export function parseNginxErrors(output: string): ConfigError[] {
  const out: ConfigError[] = [];
  const re = /^(?:nginx: |\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d )\[(emerg|alert|crit|error|warn)\] (?:\d+#\d+: )?(.*)$/;
  for (const line of output.split(/\r?\n/)) {
    const m = re.exec(line);
    if (!m) continue;
    let message = m[2].trim();
    let file: string | null = null;
    let lineNo: number | null = null;
    const loc = / in (\S+):(\d+)$/.exec(message);
    if (loc) {
      file = loc[1];
      lineNo = Number(loc[2]);
      message = message.slice(0, loc.index);
    }
    out.push({ level: m[1] as ConfigError['level'], file, line: lineNo, message });
  }
  return out;
}

/**
 * `nginx -t -p PREFIX -c CONF`. The prefix must exist (nginx -t creates and removes the pid
 * file and opens the log files): call preparePrefix() first. A relative confPath is resolved
 * against the current directory, not the prefix. A config without a `pid` directive is
 * tested with `-g 'pid run/nginx.pid;'`, as startNginx() runs it.
 */
export async function testConfig(loc: NginxLocation, prefix: string, confPath: string): Promise<ConfigTestResult> {
  const conf = path.resolve(confPath);
  // Same pid default as startNginx(): never the compiled-in system-wide /run/nginx.pid.
  const globals = declaredPid(conf) === null ? `pid ${DEFAULT_PID_FILE};` : undefined;
  const r = await execa(loc.bin, ['-t', ...prefixArgs(prefix, conf, globals)], { reject: false, all: true, timeout: 60_000 });
  const output = r.all ?? '';
  const diags = parseNginxErrors(output);
  return {
    ok: r.exitCode === 0,
    output,
    errors: diags.filter((d) => d.level !== 'warn'),
    warnings: diags.filter((d) => d.level === 'warn'),
  };
}


/** `-p PREFIX/ -c CONF [-g GLOBALS]`. Shared with start.ts; not re-exported by index.ts. */
export function prefixArgs(prefix: string, conf: string, globals?: string): string[] {
  const p = path.resolve(prefix);
  const args = ['-p', p.endsWith(path.sep) ? p : p + path.sep, '-c', conf];
  if (globals) args.push('-g', globals);
  return args;
}
