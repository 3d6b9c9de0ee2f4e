import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

// Files shipped next to the code (package.json, templates/, njs/, scripts/) resolve from
// PROJECT_ROOT, the parent of this module's directory. That holds both when the sources run
// (src/version.ts) and from the bundled CLI (lib/gatewayctl.mjs, where every module shares
// one import.meta.url): modules elsewhere must not compute paths from their own location.
const pkgPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../package.json');
export const PROJECT_ROOT = path.dirname(pkgPath);
export const VERSION: string = JSON.parse(readFileSync(pkgPath, 'utf8')).version;
