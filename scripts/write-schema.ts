// Writes schema/gateway.schema.json (for editors: `# yaml-language-server: $schema=...`).
// A test fails when the published file and src/config/schema.ts drift apart.
import { writeFileSync } from 'node:fs';
import { gatewaySchema } from '../src/config/schema.ts';

export const schemaJson = (): string => `${JSON.stringify(gatewaySchema, null, 2)}\n`;
if (process.argv[1]?.endsWith('write-schema.ts')) {
  writeFileSync(new URL('../schema/gateway.schema.json', import.meta.url), schemaJson());
}
