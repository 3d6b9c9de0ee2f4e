// Diagnostic formatting, Caddy-style: `gateway.yaml:14:15 error GW204 routes[2].upstream: message`.
import type { Diagnostic } from './types.ts';

export function formatDiagnostic(x: Diagnostic): string {
  const where = x.at ? `${x.at.file}:${x.at.line}:${x.at.col}` : '-';
  const path = x.at?.path ? ` ${x.at.path}:` : '';
  return `${where} ${x.severity} ${x.code}${path} ${x.message}`;
}

export function sortDiagnostics(xs: Diagnostic[]): Diagnostic[] {
  return [...xs].sort((a, b) => {
    const fa = a.at?.file ?? '';
    const fb = b.at?.file ?? '';
    if (fa !== fb) return fa < fb ? -1 : 1;
    return (a.at?.line ?? 0) - (b.at?.line ?? 0) || (a.at?.col ?? 0) - (b.at?.col ?? 0) || a.code.localeCompare(b.code);
  });
}

export const hasErrors = (xs: Diagnostic[]): boolean => xs.some((x) => x.severity === 'error');
