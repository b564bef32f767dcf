/**
 * The failure registry is closed: every failure type the code raises is registered in
 * core/failures.ts, and every registered type is raised somewhere. Read from the sources, so
 * a new `ApplicationFailure` with an unregistered type, or a stale registry entry, fails here.
 */
import { ApplicationFailure, ActivityFailure, RetryState } from '@temporalio/common';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorMessage, failureMessage, failureType, FailureType, isFailureType, NON_RETRYABLE, RETRYABLE } from '../../core/failures.js';
import { ROOT } from '../support/harness.js';
import { toFailure } from '../../activities/failures.js';
import { DriverError } from '../../drivers/types.js';

const SOURCE_DIRS = ['activities', 'bench', 'cli', 'config', 'core', 'drivers', 'emulator', 'github', 'host', 'ssh', 'temporal', 'webhooks', 'workers', 'workflows'];

function sources(): Array<{ file: string; text: string }> {
  const out: Array<{ file: string; text: string }> = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) out.push({ file: relative(ROOT, path), text: readFileSync(path, 'utf8') });
    }
  };
  for (const d of SOURCE_DIRS) walk(join(ROOT, d));
  return out;
}

/** The argument text of every `ApplicationFailure.<factory>(…)` call, balanced parentheses. */
function failureCalls(text: string): string[] {
  const calls: string[] = [];
  const re = /ApplicationFailure\.(nonRetryable|retryable|create|fromError)\(/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let depth = 1;
    let i = m.index + m[0].length;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === '(') depth++;
      else if (text[i] === ')') depth--;
    }
    calls.push(text.slice(m.index, i));
  }
  return calls;
}

describe('the failure registry', () => {
  const files = sources();

  it('the scan sees the code that raises failures (sanity: it can find something)', () => {
    const calls = files.flatMap((f) => failureCalls(f.text));
    expect(calls.length).toBeGreaterThanOrEqual(10);
  });

  it('every ApplicationFailure is raised with a registered type', () => {
    const bad: string[] = [];
    for (const f of files) {
      for (const call of failureCalls(f.text)) {
        // A registry constant, or a variable filled from one of the registry's tables.
        const typed = /FailureType\.[A-Za-z]+/.test(call) || /\btype(:|,|\s*\))/.test(call);
        if (!typed) bad.push(`${f.file}: ${call.slice(0, 120)}`);
        for (const lit of call.match(/'Ekiden[A-Za-z_]*'|"Ekiden[A-Za-z_]*"|`Ekiden[^`]*`/g) ?? []) bad.push(`${f.file}: literal type ${lit}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('no failure type is spelled as a string outside the registry', () => {
    const registered = new Set(Object.values(FailureType) as string[]);
    const bad: string[] = [];
    for (const f of files.filter((x) => x.file !== join('core', 'failures.ts'))) {
      for (const lit of f.text.match(/['"`]Ekiden[A-Z][A-Za-z_]*['"`]/g) ?? []) {
        const name = lit.slice(1, -1);
        // Search attribute names share the prefix; they are not failures.
        if (/^Ekiden(Host|Pool|Runner|Phase|Job)$/.test(name)) continue;
        bad.push(`${f.file}: ${lit}${registered.has(name) ? ' (use FailureType)' : ' (not registered)'}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('every registered type is raised somewhere', () => {
    const text = files.filter((x) => x.file !== join('core', 'failures.ts')).map((f) => f.text).join('\n');
    const unused = (Object.keys(FailureType) as Array<keyof typeof FailureType>).filter((k) => !text.includes(`FailureType.${k}`));
    expect(unused).toEqual([]);
  });

  it('every type says whether it is retryable, and NON_RETRYABLE agrees', () => {
    expect(Object.keys(RETRYABLE).sort()).toEqual([...(Object.values(FailureType) as string[])].sort());
    for (const t of Object.values(FailureType)) expect(NON_RETRYABLE.includes(t)).toBe(!RETRYABLE[t]);
    expect(isFailureType(FailureType.VmLost)).toBe(true);
    expect(isFailureType('InvalidInput')).toBe(false);
  });

  it('type and message are read through activity wrappers', () => {
    const inner = ApplicationFailure.nonRetryable('VM gone', FailureType.VmLost);
    const wrapped = new ActivityFailure('activity failed', 'destroyVm', '1', RetryState.NON_RETRYABLE_FAILURE, 'w', inner);
    expect(failureType(wrapped)).toBe(FailureType.VmLost);
    expect(failureMessage(wrapped)).toBe('VM gone');
    expect(failureType(new Error('plain'))).toBeUndefined();
    expect(failureMessage('text')).toBe('text');
    expect(errorMessage(new Error('boom'))).toBe('boom');
    expect(errorMessage(42)).toBe('42');
  });

  it('a full disk is HostDiskFull, final, whichever layer said it; a full image cache stays ImageCacheFull', () => {
    const fsFull = Object.assign(new Error("ENOSPC: no space left on device, copyfile '/img/disk' -> '/vms/.tmp-x/disk'"), { code: 'ENOSPC' });
    const cases: Array<[unknown, string]> = [
      [fsFull, FailureType.HostDiskFull],
      [new DriverError('failed', 'qemu-img create failed: qemu-img: /vms/x/disk.qcow2: Could not write: No space left on device'), FailureType.HostDiskFull],
      [new Error('clone failed', { cause: fsFull }), FailureType.HostDiskFull],
      [new DriverError('cache-full', 'image cache: needs 9 GiB, no space left on device (2 GiB free)'), FailureType.ImageCacheFull],
      [new DriverError('failed', 'qemu exited with 1'), FailureType.DriverFailed],
    ];
    for (const [err, type] of cases) {
      const f = toFailure(err) as ApplicationFailure;
      expect(f.type, String(err)).toBe(type);
      expect(f.nonRetryable).toBe(!RETRYABLE[type as FailureType]);
    }
    expect((toFailure(fsFull) as ApplicationFailure).message).toBe("the host's disk is full: ENOSPC: no space left on device, copyfile '/img/disk' -> '/vms/.tmp-x/disk'; free space on the host, or lower its capacity");
    expect(toFailure(new Error('plain'))).toBeInstanceOf(Error);
  });
});
