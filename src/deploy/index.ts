// Public surface of deploy / rollback / releases (see README.md in this directory).
export {
  deploy,
  rollback,
  pruneReleases,
  selectRelease,
  DeployError,
  STEP_TEXT,
  type ActivationResult,
  type CommonOptions,
  type DeployOptions,
  type DeployStep,
  type RollbackOptions,
} from './deploy.ts';
export { acquireLock, LockBusyError, pidAlive, type HeldLock, type LockInfo } from './lock.ts';
export {
  layout,
  listReleases,
  readManifest,
  releaseName,
  releaseTime,
  releaseSeq,
  compareReleases,
  outputHash,
  isReleaseName,
  linkedRelease,
  ManifestError,
  type BuildManifest,
  type Layout,
  type ReleaseInfo,
} from './releases.ts';
export { probeReady, waitReady, connectAddress, type Readiness, type ReadyProbe } from './ready.ts';
export { isSecretFile, copyTreeDurable, atomicSymlink } from './fsutil.ts';
