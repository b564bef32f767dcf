/**
 * host/data-dir-lock.ts: one owner per data dir. The lock file holds the owner's pid; a live
 * owner refuses others (DataDirInUseError), a dead one's lock (or an empty one left long ago)
 * is taken over, and among processes racing for a stale lock exactly one wins. Making the
 * data dir explains what is in the way.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { claimDataDir, DataDirError, DataDirInUseError, ensureDataDir, LOCK_FILE, lockDataDir } from '../../host/data-dir-lock.js';
import { ROOT } from '../support/harness.js';

const root = mkdtempSync(join(tmpdir(), 'ekiden-lock-'));
let n = 0;
const fresh = () => join(root, `d${n++}`);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('lockDataDir', () => {
  it('creates the lock with this pid, refuses a second owner while held, and removes it on release', () => {
    const dir = ensureDataDir(fresh());
    const lock = lockDataDir(dir);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8').split('\n')[0]).toBe(String(process.pid));
    let refused: unknown;
    try {
      lockDataDir(dir);
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(DataDirInUseError);
    expect((refused as Error).message).toBe(`data dir ${dir} is in use by pid ${process.pid}`);
    lock.release();
    lock.release(); // idempotent
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    lockDataDir(dir).release();
  });

  it("takes over a dead process's lock", () => {
    const dir = ensureDataDir(fresh());
    writeFileSync(join(dir, LOCK_FILE), `${deadPid()}\n\nekiden up\n`);
    const lock = lockDataDir(dir);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8').split('\n')[0]).toBe(String(process.pid));
    lock.release();
  });

  it('takes over a lock whose pid now belongs to a process started later (a reused pid)', () => {
    const dir = ensureDataDir(fresh());
    // Our own pid, but with another start time: not us, so stale.
    writeFileSync(join(dir, LOCK_FILE), `${process.pid}\n1\nekiden up\n`);
    const lock = lockDataDir(dir);
    lock.release();
  });

  it('takes over an empty lock left long ago, but waits for one just being written', () => {
    const dir = ensureDataDir(fresh());
    const file = join(dir, LOCK_FILE);
    writeFileSync(file, '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    lockDataDir(dir).release();
    // Fresh and empty: another process is between creating it and writing its pid.
    writeFileSync(file, '');
    const started = Date.now();
    // Nobody writes it here, so after the grace it is treated as garbage and taken over.
    lockDataDir(dir).release();
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
  });

  it('a directory that cannot be written is a DataDirError, not a raw errno', () => {
    const file = join(root, `file-${n++}`);
    writeFileSync(file, '');
    expect(() => claimDataDir(file)).toThrow(DataDirError);
    expect(() => claimDataDir(file)).toThrow(`data dir ${file} is a file, not a directory; give a directory (or move the file away)`);
    expect(() => claimDataDir(join(file, 'below'))).toThrow(`data dir ${join(file, 'below')}: ${file} is a file, not a directory`);
  });

  it('among processes racing for a stale lock, exactly one wins', async () => {
    const dir = ensureDataDir(fresh());
    writeFileSync(join(dir, LOCK_FILE), `${deadPid()}\n\nekiden up\n`);
    const moduleUrl = new URL(`file://${join(ROOT, 'dist', 'host', 'data-dir-lock.js')}`).href;
    // Each contender waits for the same moment, tries once, then holds what it got for a while.
    const go = Date.now() + 3_000;
    const script = `
      const { lockDataDir } = await import(${JSON.stringify(moduleUrl)});
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, ${go} - Date.now()));
      try { lockDataDir(${JSON.stringify(dir)}); console.log('won'); } catch (err) { console.log(err.name); }
      setTimeout(() => {}, 1500);`;
    const results = await Promise.all(
      Array.from({ length: 6 }, () => {
        const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
        return new Promise<string>((resolve) => p.once('close', () => resolve(out.trim())));
      }),
    );
    expect(results.filter((r) => r === 'won'), results.join(', ')).toHaveLength(1);
    expect(results.filter((r) => r === 'DataDirInUseError')).toHaveLength(5);
    // The winner released it when it exited.
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });
});
