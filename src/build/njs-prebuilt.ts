// The njs bundle built together with the CLI. This file is the stand-in the sources run
// with: scripts/build-cli.mjs replaces it, in the bundled CLI only, by the pieces of the njs bundle
// and the content key of the sources it was built from (njsSourcesKey() in ./njs.ts).
import type { NjsModuleParts } from '../njs/bundle.ts';

export const prebuiltNjs: { key: string; parts: NjsModuleParts } | null = null;
