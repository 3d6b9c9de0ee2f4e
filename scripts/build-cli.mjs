#!/usr/bin/env node
// Bundles the CLI (src/cli.ts and everything it imports) into lib/gatewayctl.mjs with
// esbuild, so bin/gatewayctl.js starts plain JavaScript instead of compiling TypeScript on
// every call. Runs from `npm ci`/`npm install` (prepare), `npm start`, `npm run lint:njs` and
// the test suite's global setup (tests/support/global-setup.ts). The TypeScript sources
// stay the truth; lib/ is not committed.
//
// Generated at build time (see generatedModules): ajv's validator for the schema and the
// njs bundle, so neither is compiled on a CLI start.
//
// TypeScript (the njs lint), esbuild (njs bundling) and acme-client (`tls issue`/`renew`)
// stay external: they load from node_modules at their point of use, only for the commands
// that need them. The other dependencies are bundled. Measured with scripts/measure-cli.sh
// (`--external-deps`, then `scripts/measure-cli.sh --no-build`): with every dependency
// external, `--version` took about 200 ms CPU and 67 MiB, bundled 80 ms and 50 MiB, since
// an ES module bundle hoists the imports of external packages and loads them all at start.
//
// Every module of the bundle shares one import.meta.url (lib/gatewayctl.mjs), so files next
// to the code resolve from src/version.ts's PROJECT_ROOT, one level up in both layouts.
//
//   node scripts/build-cli.mjs [--external-deps] [--outfile <file>]
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ALWAYS_EXTERNAL = ['typescript', 'esbuild', 'acme-client'];

/**
 * Modules generated from the sources at build time, each replacing a stand-in file of src/
 * in the bundle only:
 * - src/config/schema-validator.ts: ajv's standalone code for gatewaySchema(FEATURES) (the
 *   core's keys and the registered features' fragments), compiled with check-schema.ts's
 *   AJV_OPTIONS, and the schema's key, so the CLI does not compile the schema on every start
 *   (the largest start-up cost of `validate`);
 * - src/build/njs-prebuilt.ts: the pieces of the njs bundle of njs/ with the content key of its sources,
 *   so a build that uses njs loads neither esbuild nor TypeScript while njs/ is unchanged.
 */
async function generatedModules() {
  const entry = await esbuild.build({
    absWorkingDir: root,
    stdin: {
      contents: [
        "export { gatewaySchema } from './src/config/schema.ts';",
        "export { FEATURES } from './src/features/index.ts';",
        "export { AJV_OPTIONS, schemaKey } from './src/config/check-schema.ts';",
        "export { njsBundleParts, njsSourcesKey } from './src/build/njs.ts';",
      ].join('\n'),
      resolveDir: root,
      loader: 'ts',
    },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'silent',
  });
  // a file one level below the project root (PROJECT_ROOT resolves as from lib/gatewayctl.mjs),
  // so its imports resolve from node_modules
  const tmp = path.join(root, 'lib', `.generate-${process.pid}.mjs`);
  mkdirSync(path.dirname(tmp), { recursive: true });
  writeFileSync(tmp, entry.outputFiles[0].text);
  let mod;
  try {
    mod = await import(pathToFileURL(tmp).href);
  } finally {
    rmSync(tmp, { force: true });
  }
  const { Ajv2020 } = await import('ajv/dist/2020.js');
  const { default: standaloneCode } = await import('ajv/dist/standalone/index.js');
  const ajv = new Ajv2020({ ...mod.AJV_OPTIONS, code: { source: true, esm: true } });
  const schema = mod.gatewaySchema(mod.FEATURES);
  const validator = `${standaloneCode(ajv, ajv.compile(schema))}\nexport { validate as precompiledValidator };\nexport const precompiledSchemaKey = ${JSON.stringify(mod.schemaKey(schema))};\n`;
  let prebuilt = null;
  try {
    prebuilt = { key: mod.njsSourcesKey(), parts: mod.njsBundleParts() };
  } catch (e) {
    // njs/ does not bundle or lint clean: the CLI still builds, and reports it where it
    // bundles njs (build, njs-lint) with positions
    process.stderr.write(`build-cli: no prebuilt njs bundle: ${e.message.split('\n')[0]}\n`);
  }
  const njs = `export const prebuiltNjs = ${JSON.stringify(prebuilt)};\n`;
  return { 'src/config/schema-validator.ts': validator, 'src/build/njs-prebuilt.ts': njs };
}

async function main() {
  const args = process.argv.slice(2);
  const flag = (name) => args.includes(name);
  const value = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] ? args[i + 1] : dflt;
  };
  const outfile = path.resolve(root, value('--outfile', 'lib/gatewayctl.mjs'));
  const tmp = `${outfile}.tmp-${process.pid}`;
  mkdirSync(path.dirname(outfile), { recursive: true });
  try {
    const generated = await generatedModules();
    await esbuild.build({
      absWorkingDir: root,
      entryPoints: ['src/cli.ts'],
      outfile: tmp,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: flag('--external-deps') ? 'external' : undefined,
      external: ALWAYS_EXTERNAL,
      // Bundled CommonJS dependencies (and ajv's standalone code) call require().
      banner: { js: "import { createRequire as __gwCreateRequire } from 'node:module';\nconst require = __gwCreateRequire(import.meta.url);" },
      plugins: [
        {
          name: 'generated',
          setup(build) {
            build.onLoad({ filter: /[\\/]src[\\/](config[\\/]schema-validator|build[\\/]njs-prebuilt)\.ts$/ }, (args) => ({
              contents: generated[path.relative(root, args.path).split(path.sep).join('/')],
              loader: 'js',
              resolveDir: root,
            }));
          },
        },
      ],
      legalComments: 'none',
      logLevel: 'warning',
    });
    // Atomic: CLI processes started meanwhile (parallel tests) see the old or the new bundle.
    renameSync(tmp, outfile);
  } catch (e) {
    rmSync(tmp, { force: true });
    process.stderr.write(`build-cli: ${e.message}\n`);
    process.exit(1);
  }
}

await main();
