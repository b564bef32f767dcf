/**
 * `ekiden webhook` argument handling: bad arguments exit 2 with a one-line reason before
 * anything connects; settings come from flags, a config file and the environment.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_PORT, DEFAULT_SECRET_ENV, parseWebhookArgs, webhookCommand } from '../../webhooks/command.js';

const env = { EKIDEN_WEBHOOK_SECRET: 's3cret' };

afterEach(() => {
  vi.restoreAllMocks();
});

async function run(argv: string[], environment: Record<string, string | undefined> = env): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
    lines.push(args.map(String).join(' '));
  });
  const code = await webhookCommand(argv, environment);
  return { code, lines };
}

describe('ekiden webhook', () => {
  it('exits 2 with a one-line reason for a bad --port', async () => {
    for (const port of ['nope', '70000', '-1', '1.5', '']) {
      const { code, lines } = await run([`--port=${port}`]);
      expect(code, port).toBe(2);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^ekiden webhook: --port: ".*" is not a port number/);
      expect(lines[0]).not.toContain('\n');
    }
  });

  it('exits 2 when the secret is missing, an option is unknown, or --temporal is not HOST:PORT', async () => {
    const noSecret = await run([], {});
    expect(noSecret.code).toBe(2);
    expect(noSecret.lines[0]).toMatch(/EKIDEN_WEBHOOK_SECRET is empty/);
    const otherEnv = await run(['--secret-env', 'HOOK_SECRET'], env);
    expect(otherEnv.code).toBe(2);
    expect(otherEnv.lines[0]).toMatch(/HOOK_SECRET is empty/);
    const unknown = await run(['--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.lines).toHaveLength(1);
    const badTemporal = await run(['--temporal', 'not an address']);
    expect(badTemporal.code).toBe(2);
    expect(badTemporal.lines[0]).toMatch(/--temporal/);
  });

  it('takes defaults, flags, a config file and the environment, flags first', () => {
    const defaults = parseWebhookArgs([], env);
    expect(defaults).toMatchObject({ port: DEFAULT_PORT, secretEnv: DEFAULT_SECRET_ENV, secret: 's3cret', temporal: { address: '127.0.0.1:7233', namespace: 'default' } });
    const dir = mkdtempSync(join(tmpdir(), 'ekiden-webhook-cmd-'));
    try {
      const file = join(dir, 'config.yaml');
      writeFileSync(file, 'temporal:\n  address: temporal.example.com:7233\n  namespace: ci\nwebhook:\n  port: 9000\n  secretEnv: HOOK_SECRET\n');
      const fromFile = parseWebhookArgs(['--config', file], { HOOK_SECRET: 'x' });
      expect(fromFile).toMatchObject({ port: 9000, secretEnv: 'HOOK_SECRET', temporal: { address: 'temporal.example.com:7233', namespace: 'ci' } });
      const flagsWin = parseWebhookArgs(['--config', file, '--port', '0', '--temporal', 'localhost:7234', '--namespace', 'prod'], { HOOK_SECRET: 'x' });
      expect(flagsWin).toMatchObject({ port: 0, temporal: { address: 'localhost:7234', namespace: 'prod' } });
      writeFileSync(file, 'webhook:\n  port: lots\n');
      expect(() => parseWebhookArgs(['--config', file], env)).toThrow(/webhook.port: "lots" is not a port number/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(parseWebhookArgs([], { ...env, TEMPORAL_NAMESPACE: 'envns' }).temporal.namespace).toBe('envns');
  });
});
