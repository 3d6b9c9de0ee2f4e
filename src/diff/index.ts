// Config diff: semantic summary of two GatewayModels plus the unified diff of the generated
// nginx files. `gatewayctl diff` (src/commands/diff.ts) is the only caller that prints.
import type { Feature } from '../core/feature.ts';
import { compareFiles } from './files.ts';
import type { DiffResult } from './format.ts';
import { risky, semanticDiff } from './semantic.ts';
import type { Side } from './sources.ts';

export { compareFiles, contentDiffers, HEADER_PREFIX, inputHashOf, type FileDiff } from './files.ts';
export { formatJson, formatMarkdown, formatResult, formatText, type DiffResult, type Format } from './format.ts';
export { semanticDiff, risky, SECTIONS, type Change, type RiskCode, type Section } from './semantic.ts';
export { againstSide, baseSide, defaultBase, DiffSourceError, headSide, modelJson, type Side } from './sources.ts';
export { diffLines, unifiedDiff } from './unified.ts';

export interface DiffOptions {
  context?: number; // unified diff context lines, default 3
}

/** Compare two built sides (both must have files). */
export function diffSides(base: Side, head: Side, features: readonly Feature[], opts: DiffOptions = {}): DiffResult {
  if (!base.files || !head.files) throw new Error('diffSides: both sides must be built');
  const files = compareFiles(base.files, head.files, features, { baseLabel: 'a', headLabel: 'b', context: opts.context });
  const available = !!base.model && !!head.model;
  const changes = available ? semanticDiff(base.model!, head.model!, features) : [];
  return {
    base: base.label,
    head: head.label,
    differs: files.length > 0,
    semantic: { available, note: available ? null : (base.modelNote ?? head.modelNote), changes },
    risks: risky(changes),
    files,
  };
}
