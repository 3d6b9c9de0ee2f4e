// Errors thrown by the nginx runtime helpers: NginxError with a stable code, a one-line
// `fix` hint and nginx's raw output, and NginxNotFoundError listing every place findNginx()
// checked.

/** Where a candidate nginx binary came from (flag, environment, project runtime, PATH). */
export type NginxSource = 'flag' | 'env' | 'runtime' | 'path';

export type NginxErrorCode =
  | 'NGINX_NOT_FOUND' // no usable binary (see NginxNotFoundError.tried)
  | 'NGINX_EXEC_FAILED' // the binary exists but `nginx -V` could not run
  | 'NGINX_START_FAILED' // nginx exited during startup (bad config, port in use, …)
  | 'NGINX_ALREADY_RUNNING' // the prefix's pid file names a live nginx
  | 'NGINX_NOT_RUNNING' // reload on a prefix without a live master
  | 'NGINX_RELOAD_FAILED' // HUP sent but the new configuration was not applied
  | 'NGINX_TIMEOUT'; // waited too long for a pid file, a port or an exit

export class NginxError extends Error {
  readonly code: NginxErrorCode;
  /** One actionable sentence: what to run or change. */
  readonly fix: string | null;
  /** Raw nginx output when there is some (stderr of the failed run, error log tail). */
  readonly output: string;
  constructor(code: NginxErrorCode, message: string, opts: { fix?: string; output?: string } = {}) {
    super(message + (opts.fix ? `\nFix: ${opts.fix}` : ''));
    this.name = 'NginxError';
    this.code = code;
    this.fix = opts.fix ?? null;
    this.output = opts.output ?? '';
  }
}

export interface NginxCandidate {
  source: NginxSource;
  candidate: string; // path or description that was checked
  problem: string; // why it was not used
}

/** Thrown by findNginx(): lists every place that was checked and why it did not qualify. */
export class NginxNotFoundError extends NginxError {
  readonly tried: NginxCandidate[];
  constructor(message: string, tried: NginxCandidate[], fix: string) {
    const lines = tried.map((t) => `  - ${t.source}: ${t.candidate} (${t.problem})`);
    super('NGINX_NOT_FOUND', `${message}\nChecked:\n${lines.join('\n')}`, { fix });
    this.name = 'NginxNotFoundError';
    this.tried = tried;
  }
}
