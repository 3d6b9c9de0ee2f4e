// Locating and driving nginx: which binary, what it was built with, the prefix directory
// layout generated configs expect, `nginx -t`, and start / reload / stop. This file is the
// public API; each concern lives in its own module:
//   errors.ts       NginxError (stable code + `fix` hint), NginxNotFoundError
//   locate.ts       findNginx(), project root, runtime directory
//   versions.ts     `nginx -V`, dynamic modules, the njs version probe
//   prefix.ts       preparePrefix(): the prefix directories and the `modules` link
//   test-config.ts  `nginx -t` and parsing nginx's diagnostics
//   pid.ts          pid files, live-process and child-process checks
//   start.ts        startNginx() (daemon or foreground)
//   reload.ts       reloadNginx() (SIGHUP, wait for new workers)
//   stop.ts         stopNginx(), killProcess()
//   wait.ts         waitFor(), waitForPorts(), tail()
//
// Conventions shared with the compiler (see ARCHITECTURE.md):
// - Every path inside a generated config is relative to the nginx prefix (`-p PREFIX`).
// - `load_module modules/…` resolves through `PREFIX/modules`, a symlink to the runtime's
//   modules directory that preparePrefix() maintains.
// - The pid file is `PREFIX/run/nginx.pid` unless the main config sets `pid` itself.
// - Generated configs never set `daemon`; the caller decides (startNginx `foreground`).
//
// Nothing here prints or exits: failures are thrown as NginxError with a `fix` hint.

export { NginxError, NginxNotFoundError, type NginxCandidate, type NginxErrorCode } from './errors.ts';
export { NGINX_ENV, PROVISION_COMMAND, findNginx, projectRoot, runtimeDir, type NginxLocation, type NginxSource } from './locate.ts';
export {
  BROTLI_MODULE,
  NJS_MODULE,
  STREAM_MODULE,
  compareVersions,
  nginxInfo,
  parseNginxV,
  type DynamicModule,
  type NginxInfo,
  type NjsInfo,
} from './versions.ts';
export { PREFIX_DIRS, preparePrefix, type PrefixLayout } from './prefix.ts';
export { parseNginxErrors, testConfig, type ConfigError, type ConfigTestResult } from './test-config.ts';
export { DEFAULT_PID_FILE, childPids, isRunning, pidAlive, pidFileFor, processTitleIncludes, readPid } from './pid.ts';
export { startNginx, type NginxProcess, type StartOptions } from './start.ts';
export { reloadNginx, type ReloadOptions } from './reload.ts';
export { killProcess, stopNginx, type StopOptions } from './stop.ts';
export { canConnect, tail, waitFor, waitForPorts } from './wait.ts';
