// Writes schema/gateway.schema.json (for editors: `# yaml-language-server: $schema=...`).
// The schema is the core's keys with the registered features' fragments (src/features/*/schema.ts);
// a test fails when the published file and the sources drift apart.
import { writeFileSync } from 'node:fs';
import { gatewaySchema } from '../src/config/schema.ts';
import { FEATURES } from '../src/features/index.ts';

export const schemaJson = (): string => `${JSON.stringify(gatewaySchema(FEATURES), null, 2)}\n`;
if (process.argv[1]?.endsWith('write-schema.ts')) {
  writeFileSync(new URL('../schema/gateway.schema.json', import.meta.url), schemaJson());
}
