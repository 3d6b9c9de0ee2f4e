// File facts tests assert on (permissions of written secrets and build outputs).
import { statSync } from 'node:fs';

/** Permission bits of a file (e.g. 0o600). */
export function fileMode(p: string): number {
  return statSync(p).mode & 0o777;
}
