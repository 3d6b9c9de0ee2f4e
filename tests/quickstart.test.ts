// The README's quick start: `npm start` (gatewayctl up --demo) serves the bundled
// gateway.yaml with its demo upstreams, through real nginx; Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { describe, expect, it } from 'vitest';

const CLI = path.resolve('bin/gatewayctl.js');

async function until<T>(what: string, fn: () => Promise<T | null>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

describe('quick start: gatewayctl up --demo', () => {
  it('serves the demo gateway and stops cleanly on Ctrl-C', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'gw-up-'));
    chmodSync(tmp, 0o755); // nginx workers (nobody, when run as root) must reach the cache dir
    const child = spawn('node', [CLI, 'up', '--demo', '-o', path.join(tmp, 'dist'), '--prefix', path.join(tmp, 'run')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const models = await until('the gateway to answer /v1/models', async () => {
        const r = await fetch('http://127.0.0.1:8080/v1/models');
        return r.status === 200 ? r : null;
      }, 30_000);
      const body = (await models.json()) as { data: { id: string }[] };
      expect(body.data.map((m) => m.id)).toContain('demo-small');
      expect(models.headers.get('x-request-id')).toMatch(/^[0-9a-f]{32}$/);

      const chat = await fetch('http://127.0.0.1:8080/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(chat.headers.get('content-type')).toContain('text/event-stream');
      expect(await chat.text()).toContain('data: [DONE]');

      const api = await fetch('http://127.0.0.1:8080/api/users');
      expect(((await api.json()) as { path: string }).path).toBe('/users');
      expect((await fetch('http://127.0.0.1:8081/nginx_status')).status).toBe(200);
      // the demo counts its traffic: /metrics on the status listener (the log phase runs after
      // each answer, so poll until the last request above is in)
      const metrics = await until('the api request in /metrics', async () => {
        const text = await (await fetch('http://127.0.0.1:8081/metrics')).text();
        return /^gatewayctl_requests_total\{route="api",method="GET",code="200"/m.test(text) ? text : null;
      }, 5_000);
      expect(metrics).toMatch(/^gatewayctl_requests_total\{route="models",method="GET",code="200",status_class="2xx",upstream="llm"\} 1$/m);
      expect(metrics).toMatch(/^gatewayctl_requests_total\{route="chat",method="POST",code="200"/m);
      // the access log is followed on the terminal
      await until('the access log on the terminal', async () => (out.includes('"route":"chat"') ? true : null), 5_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- gatewayctl up output ---\n${out}`);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited, out).toBe(0);
    expect(out).toContain('stopping');
    // the demo starts clean: no nginx warning (a hash nginx had to size itself, say)
    expect(out).not.toMatch(/\[warn\]/);
    for (const port of [8080, 8081, 9101, 9102, 9201]) expect(await portOpen(port), `port ${port}`).toBe(false);
  });
});
