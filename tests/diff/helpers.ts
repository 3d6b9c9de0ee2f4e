// Shared fixtures for the diff tests: a base gateway config as a plain object (edit a
// clone, stringify, compile). Output capture for command runs is tests/support/capture.ts.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { compile } from '../../src/build/compile.ts';
import type { GatewayModel } from '../../src/model/types.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Cfg = any;

export function baseConfig(): Cfg {
  return {
    version: 1,
    global: { status: { listen: '127.0.0.1:8081' } },
    listeners: [
      { name: 'public', port: 8080 },
      {
        name: 'secure',
        port: 8443,
        server_names: ['api.example.com'],
        tls: { cert: 'ssl/api.crt', key: 'ssl/api.key', profile: 'modern', hsts: { max_age: 31536000 } },
      },
    ],
    upstreams: {
      llm: { balance: 'least_conn', servers: ['10.0.0.1:8000', '10.0.0.2:8000'] },
      'llm-v2': { servers: ['10.0.1.1:8000'] },
      api: {
        servers: ['10.0.2.1:80', { address: '10.0.2.9:80', backup: true }],
      },
    },
    limits: {
      rate: {
        api: { key: 'client_ip', rate: '10r/s', burst: 20 },
        chat: { key: 'client_ip', rate: '2r/s', burst: 5 },
      },
      conn: { streams: { max: 10 } },
    },
    caches: { models: { size: '10m', max_size: '100m' } },
    routes: [
      {
        name: 'chat',
        match: { exact: '/v1/chat/completions', methods: ['POST'] },
        upstream: 'llm',
        streaming: true,
        rate_limits: ['chat'],
        conn_limits: ['streams'],
        cors: { origins: ['https://app.example.com'] },
      },
      {
        name: 'models',
        match: { exact: '/v1/models', methods: ['GET'] },
        upstream: 'llm',
        cache: { zone: 'models', ttl: { '200': '30s' } },
        rate_limits: ['api'],
      },
      {
        name: 'admin',
        match: { prefix: '/admin/' },
        upstream: 'api',
        access: { allow: ['10.0.0.0/8'], deny: ['all'] },
        rate_limits: ['api'],
      },
      { name: 'api', match: { prefix: '/api/' }, upstream: 'api', strip_prefix: true, rate_limits: ['api'] },
    ],
  };
}

export const clone = (c: Cfg): Cfg => structuredClone(c);

/** A config path that need not exist: compile() reads `text` instead. */
export const FAKE_PATH = path.join(os.tmpdir(), 'gatewayctl-diff-fixture', 'gateway.yaml');

export function compileCfg(cfg: Cfg | string, file = FAKE_PATH, env: NodeJS.ProcessEnv = {}): { model: GatewayModel; files: Record<string, string> } {
  const text = typeof cfg === 'string' ? cfg : stringify(cfg);
  const r = compile(file, { text, env, availableModules: { brotli: false } });
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (!r.ok || errors.length) throw new Error(`fixture does not compile: ${JSON.stringify(errors)}`);
  return { model: r.model!, files: r.files! };
}

export const yaml = (cfg: Cfg): string => stringify(cfg);

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `gatewayctl-diff-${prefix}-`));
}
