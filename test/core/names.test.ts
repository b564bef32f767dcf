import { describe, expect, it } from 'vitest';
import { isSlug, parseRunnerName, parseVmName, runnerName, runToken, vmName } from '../../core/names.js';

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
    ['other prefix', 'runner-linux-abcdefg-1'],
    ['no attempt', 'ekiden-linux-abcdefg'],
    ['short token', 'ekiden-linux-abc-1'],
    ['upper case', 'ekiden-Linux-abcdefg-1'],
  ])('parseVmName rejects %s (%s)', (_why, name) => {
    expect(parseVmName(name)).toBeUndefined();
  });

  it('run tokens are stable for a run id and differ between runs', () => {
    expect(runToken('a')).toBe(runToken('a'));
    const tokens = new Set(Array.from({ length: 1000 }, (_, i) => runToken(`run-${i}`)));
    expect(tokens.size).toBe(1000);
    for (const t of tokens) expect(t).toMatch(/^[0-9a-z]{7}$/);
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
