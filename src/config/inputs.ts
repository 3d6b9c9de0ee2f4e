// Inputs besides gateway.yaml, read in the load stage: the files features build their outputs
// from (the API key store, JWKS documents, HMAC secret files), environment values that are
// secrets, and whether certificate files exist (an ACME listener is served only once its
// certificate does). Features say what they need (Feature.inputs); this is the only place
// besides loadConfig that reads them, each file bounded before a byte is read. Every later
// stage works on the Inputs and touches no disk.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readBounded } from './load.ts';

export type InputRequest =
  | { kind: 'text'; file: string; maxBytes: number }
  | { kind: 'exists'; file: string }
  | { kind: 'env'; name: string };

export type InputValue =
  | { kind: 'text'; text: string }
  | { kind: 'tooLarge'; size: number; maxBytes: number }
  | { kind: 'error'; error: NodeJS.ErrnoException }
  | { kind: 'exists'; exists: boolean }
  | { kind: 'env'; value: string | undefined };

export interface Inputs {
  text(file: string): InputValue | undefined;
  exists(file: string): boolean;
  env(name: string): string | undefined;
  /** sha256 over every text and env value read, in request order (contents only: the paths
   *  are in gateway.yaml, whose own hash covers them); null when nothing was read */
  digest: string | null;
  /** files whose text was read (they are inputs of the build like includes) */
  files: string[];
}

const keyOf = (r: InputRequest): string => (r.kind === 'env' ? `env:${r.name}` : `${r.kind}:${r.file}`);

export function readInputs(requests: InputRequest[], env: NodeJS.ProcessEnv = process.env): Inputs {
  const values = new Map<string, InputValue>();
  const hasher = createHash('sha256');
  let readAny = false;
  const files: string[] = [];
  for (const r of requests) {
    const key = keyOf(r);
    if (values.has(key)) continue;
    let v: InputValue;
    if (r.kind === 'exists') {
      v = { kind: 'exists', exists: existsSync(r.file) };
    } else if (r.kind === 'env') {
      v = { kind: 'env', value: env[r.name] };
      if (v.value !== undefined && v.value !== '') {
        readAny = true;
        hasher.update(`env\0${v.value}\0`);
      }
    } else {
      try {
        const got = readBounded(r.file, r.maxBytes);
        v = 'tooLarge' in got ? { kind: 'tooLarge', size: got.tooLarge, maxBytes: r.maxBytes } : { kind: 'text', text: got.text };
      } catch (e) {
        v = { kind: 'error', error: e as NodeJS.ErrnoException };
      }
      if (v.kind === 'text') {
        readAny = true;
        files.push(r.file);
        hasher.update(`text\0${v.text}\0`);
      }
    }
    values.set(key, v);
  }
  return {
    text: (file) => values.get(`text:${file}`),
    exists: (file) => {
      const v = values.get(`exists:${file}`);
      return v?.kind === 'exists' && v.exists;
    },
    env: (name) => {
      const v = values.get(`env:${name}`);
      return v?.kind === 'env' ? v.value : undefined;
    },
    digest: readAny ? hasher.digest('hex') : null,
    files,
  };
}
