/**
 * `ekiden webhook` argument handling: bad arguments exit 2 with a one-line reason before
 * anything connects; settings come from flags, a config file and the environment.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_WEBHOOK_PORT, parseFleetConfig } from '../../config/fleet.js';
import { loadConfigFile } from '../../config/load.js';
import { errorMessage } from '../../core/failures.js';
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
      expect(() => parseWebhookArgs(['--config', file], env)).toThrow(/webhook\.port: "lots" is not a whole number/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(parseWebhookArgs([], { ...env, TEMPORAL_NAMESPACE: 'envns' }).temporal.namespace).toBe('envns');
  });

  it('checks --config whole with the config module: what `ekiden pool create` rejects, it rejects, with the same reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekiden-webhook-cmd-'));
    try {
      const cases: Array<[string, string, RegExp]> = [
        ['typo.yaml', 'webhook:\n  prot: 9000\n', /^webhook\.prot: unknown field; did you mean port\?/],
        ['top.yaml', 'temporal: { address: "t:7233" }\nwebhooks: { port: 9000 }\n', /^webhooks: unknown field; did you mean webhook\?/],
        ['pool.yaml', 'pools:\n  - name: ios\n    hosts: [mac-1]\n    image: i\n    labels: [self-hosted]\n    size: 3\n    max: 2\n', /^pools\[0\]\.max: 2 is less than size \(3\)/],
        ['slug.json', JSON.stringify({ pools: [{ name: 'Not A Slug', hosts: ['h'], image: 'i', labels: ['l'] }] }), /^pools\[0\]\.name: /],
        ['pool-key.yaml', 'pools:\n  - name: ios\n    hosts: [mac-1]\n    image: i\n    labels: [l]\n    sise: 2\n', /^pools\[0\]\.sise: unknown field; did you mean size\?/],
        ['fleet.toml', 'x = 1\n', /unknown config format/],
      ];
      for (const [name, text, reason] of cases) {
        const file = join(dir, name);
        writeFileSync(file, text);
        // The config module's own verdict on the file, as every other verb gets it.
        let expected = '';
        try {
          parseFleetConfig(loadConfigFile(file), env);
        } catch (err) {
          expected = errorMessage(err).split('\n')[0]!;
        }
        expect(expected, name).toMatch(reason);
        const { code, lines } = await run(['--config', file]);
        expect(code, name).toBe(2);
        expect(lines, name).toEqual([`ekiden webhook: ${expected}`]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("listens on the config module's default port, 8088 as the README says, with or without a file", () => {
    expect(DEFAULT_PORT).toBe(DEFAULT_WEBHOOK_PORT);
    expect(parseWebhookArgs([], env).port).toBe(8088);
    const dir = mkdtempSync(join(tmpdir(), 'ekiden-webhook-cmd-'));
    try {
      const file = join(dir, 'fleet.yaml');
      writeFileSync(file, 'webhook:\n  secretEnv: HOOK_SECRET\n  maxBodyBytes: 4096\n');
      expect(parseWebhookArgs(['--config', file], { HOOK_SECRET: 'x' })).toMatchObject({ port: 8088, secretEnv: 'HOOK_SECRET', maxBodyBytes: 4096 });
      // A file without a temporal address leaves it to the environment.
      expect(parseWebhookArgs(['--config', file], { HOOK_SECRET: 'x', TEMPORAL_ADDRESS: 'env-temporal:7233' }).temporal.address).toBe('env-temporal:7233');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
