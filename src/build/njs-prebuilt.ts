// The njs bundle built together with the CLI. This file is the stand-in the sources run
// with: scripts/build-cli.mjs replaces it, in the bundled CLI only, by the bundle of njs/
// and the content key of the sources it was built from (njsSourcesKey() in ./njs.ts).
export const prebuiltNjs: { key: string; code: string } | null = null;
