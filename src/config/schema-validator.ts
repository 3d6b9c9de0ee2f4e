// The schema validator ajv generates from gatewaySchema(FEATURES) at build time. This file is
// the stand-in the sources run with: scripts/build-cli.mjs replaces it, in the bundled CLI
// only, by ajv's standalone code for the schema (with AJV_OPTIONS of ./check-schema.ts) and
// the schema's key (schemaKey of ./check-schema.ts). With none here, check-schema.ts
// compiles the schema when first used.
export const precompiledValidator: ((data: unknown) => boolean) | null = null;
export const precompiledSchemaKey: string | null = null;
