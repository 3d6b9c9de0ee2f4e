#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript, run through tsx so `npm ci` is the only install step.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli.ts');
