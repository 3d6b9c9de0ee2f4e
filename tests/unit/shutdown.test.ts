// worker_shutdown_timeout: configurable in global, derived from streaming routes otherwise,
// rendered in the main context, GW280 for values nginx would treat as "forever" or absurd.
import { describe, expect, it } from 'vitest';
import { compile } from '../../src/build/compile.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { durationSeconds } from '../../src/model/shutdown.ts';

const doc = (global: string, routes: string) => `version: 1
${global ? `global:\n${global}` : ''}listeners:
  - name: public
    port: 8080
upstreams:
  api:
    servers: [127.0.0.1:9001]
routes:
${routes}`;

const plain = `  - name: a
    match: { prefix: /a/ }
    upstream: api
`;

function mainLine(text: string): string | undefined {
  const r = compile('gateway.yaml', { text });
  expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
  const conf = r.files!['nginx.conf']!;
  return /^worker_shutdown_timeout (\S+);$/m.exec(conf)?.[1];
}

describe('worker_shutdown_timeout', () => {
  it('parses nginx durations', () => {
    expect(durationSeconds('90')).toBe(90);
    expect(durationSeconds('1m30s')).toBe(90);
    expect(durationSeconds('500ms')).toBe(0.5);
    expect(durationSeconds('2h')).toBe(7200);
    expect(durationSeconds('')).toBeNaN();
    expect(durationSeconds('1x')).toBeNaN();
  });

  it('defaults to 30s without streaming routes', () => {
    expect(mainLine(doc('', plain))).toBe('30s');
  });

  it('derives from the longest streaming or WebSocket read timeout, within 30s..10m', () => {
    const stream = (read: string | null, kind = 'streaming') => `  - name: s
    match: { prefix: /s/ }
    upstream: api
    ${kind}: true
${read ? `    timeouts: { read: ${read} }\n` : ''}`;
    expect(mainLine(doc('', plain + stream('2m')))).toBe('120s');
    expect(mainLine(doc('', plain + stream('5s')))).toBe('30s');
    expect(mainLine(doc('', plain + stream(null)))).toBe('600s'); // streaming default read 3600s, capped
    expect(mainLine(doc('', plain + stream('1m30s', 'websocket')))).toBe('90s');
  });

  it('takes the configured value over the derived one', () => {
    expect(mainLine(doc('  worker_shutdown_timeout: 45s\n', plain))).toBe('45s');
    expect(mainLine(doc('  worker_shutdown_timeout: 2h\n', plain))).toBe('2h');
  });

  it('GW280 refuses 0 and values over 24h with the position of the value', () => {
    for (const [v, col] of [['"0"', 28], ['25h', 28], ['900ms', 28]] as const) {
      const r = compile('gateway.yaml', { text: doc(`  worker_shutdown_timeout: ${v}\n`, plain) });
      const lines = r.diagnostics.map(formatDiagnostic);
      expect(lines, lines.join('\n')).toContain(
        `gateway.yaml:3:${col} error GW280 global.worker_shutdown_timeout: worker_shutdown_timeout must be between 1s and 24h (got ${v.replace(/"/g, '')}); old workers must not outlive a reload indefinitely`,
      );
      expect(r.ok).toBe(false);
    }
  });
});

describe('worker_shutdown_timeout with model routing', () => {
  it('counts streaming routes that pick their upstream by model', () => {
    const text = `version: 1
listeners:
  - name: public
    port: 8080
upstreams:
  pool:
    servers: [127.0.0.1:9001]
models:
  - { id: m1, upstream: pool }
routes:
  - name: chat
    match: { exact: /v1/chat/completions, methods: [POST] }
    models: route
    streaming: true
    timeouts: { read: 4m }
`;
    const r = compile('gateway.yaml', { text });
    expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
    expect(r.files!['nginx.conf']).toMatch(/^worker_shutdown_timeout 240s;$/m);
  });
});
