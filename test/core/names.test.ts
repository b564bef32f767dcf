import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { isSlug, parseRunnerName, parseVmName, RUN_TOKEN_LENGTH, runnerName, runToken, vmName } from '../../core/names.js';

describe('names', () => {
  it('VM names round-trip through parseVmName', () => {
    const parts = { pool: 'mac-xcode-16', token: runToken('2f6c1c1e-0000-4000-8000-000000000001'), attempt: 2 };
    expect(parseVmName(vmName(parts))).toEqual(parts);
  });

  it('runner names round-trip through parseRunnerName', () => {
    const parts = { pool: 'linux', token: runToken('run-1') };
    expect(parseRunnerName(runnerName(parts))).toEqual(parts);
  });

  it.each([
    ['not ours', 'macos-sonoma-base'],
    ['other prefix', 'runner-linux-abcdefghijklm-1'],
    ['no attempt', 'ekiden-linux-abcdefghijklm'],
    ['short token', 'ekiden-linux-abc-1'],
    ['seven-digit token (before tokens had 64 bits)', 'ekiden-linux-abcdefg-1'],
    ['upper case', 'ekiden-Linux-abcdefghijklm-1'],
  ])('parseVmName rejects %s (%s)', (_why, name) => {
    expect(parseVmName(name)).toBeUndefined();
  });

  it('run tokens are FNV-1a 64 of the run id, all 64 bits in 13 base-36 digits', () => {
    // Published FNV-1a 64 test vectors: "" → cbf29ce484222325, "a" → af63dc4c8601ec8c.
    expect(runToken('')).toBe(0xcbf29ce484222325n.toString(36).padStart(RUN_TOKEN_LENGTH, '0'));
    expect(runToken('a')).toBe(0xaf63dc4c8601ec8cn.toString(36).padStart(RUN_TOKEN_LENGTH, '0'));
    expect(runToken('foobar')).toBe(0x85944171f73967e8n.toString(36).padStart(RUN_TOKEN_LENGTH, '0'));
  });

  it('run tokens are stable for a run id and differ between runs, also for run ids one character apart', () => {
    const id = '019ad6c2-4f1e-7b3a-9c21-5d8e0f6a7b10';
    expect(runToken(id)).toBe(runToken(id));
    const tokens = new Set<string>();
    for (let i = 0; i < 50_000; i++) tokens.add(runToken(randomUUID()));
    // Neighbours: the run ids Temporal hands out in a burst share most of their characters.
    for (let i = 0; i < 10_000; i++) tokens.add(runToken(`${id.slice(0, 24)}${i.toString(16).padStart(12, '0')}`));
    expect(tokens.size).toBe(60_000);
    for (const t of tokens) expect(t).toMatch(/^[0-9a-z]{13}$/);
  });

  it.each([
    ['linux', true],
    ['mac-mini-1', true],
    ['Linux', false],
    ['-x', false],
    ['x-', false],
    ['a--b', false],
    ['a'.repeat(32), false],
  ])('isSlug(%s) = %s', (value, ok) => {
    expect(isSlug(value)).toBe(ok);
  });
});
