/**
 * `ekiden` as a user runs it: bad arguments, `up --jobs N` end to end (its own dev server,
 * emulator, worker and pool), and Ctrl-C leaving nothing behind.
 */
import { execa } from 'execa';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, temporalSkipReason } from '../support/harness.js';
import { processesUnder } from './ekiden-process.js';

const BIN = join(ROOT, 'bin', 'ekiden.js');
const skip = temporalSkipReason();

describe('ekiden CLI arguments', () => {
  it.each([
    [['frobnicate'], /^ekiden: unknown command "frobnicate"/],
    [['up', '--jobs', 'three'], /^ekiden: --jobs: "three" is not a whole number\b/],
    [['up', '--driver', 'vmware'], /^ekiden: --driver: "vmware" is not one of fake, qemu, tart$/],
    [['up', '--bogus'], /^ekiden: Unknown option '--bogus'/],
    [['worker'], /^ekiden: worker: --config FILE is required$/],
  ])('%j exits 2 with a one-line reason', async (args, message) => {
    const r = await execa(process.execPath, [BIN, ...args], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(message);
  });
});

describe.skipIf(skip)('ekiden up', () => {
  it('--jobs 2 runs two demo jobs through ephemeral runners and exits 0 with nothing left', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ekiden-up-'));
    const r = await execa(process.execPath, [BIN, 'up', '--driver', 'fake', '--jobs', '2', '--data-dir', dataDir], {
      reject: false,
      timeout: 180_000,
      env: { TEMPORAL_ADDRESS: '' },
    });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/summary: 2\/2 job\(s\) succeeded/);
    expect(r.stdout).toMatch(/leftovers: 0 VM\(s\), 0 runner registration\(s\)/);
    expect(r.stdout).toMatch(/web ui: http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows/);
    expect(processesUnder(dataDir)).toEqual([]);
  });

  it('Ctrl-C stops the pool, every runner cleans up, and no process is left', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ekiden-up-int-'));
    const child = execa(process.execPath, [BIN, 'up', '--driver', 'fake', '--pool-size', '2', '--data-dir', dataDir], { reject: false, timeout: 180_000 });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 120_000;
    while (!out.includes('press Ctrl-C') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    // Let the pool boot its runners so there is something to clean up.
    const vms = () => (existsSync(join(dataDir, 'vms', 'vms')) ? readdirSync(join(dataDir, 'vms', 'vms')) : []);
    while (vms().length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    while (processesUnder(join(dataDir, 'vms')).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(processesUnder(join(dataDir, 'vms')).length).toBeGreaterThan(0);
    // The operator verbs find this `up` by its data dir: its server and the Web UI it printed.
    const ui = /web ui: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out)?.[1];
    expect(ui, out).toBeDefined();
    const listed = await execa(process.execPath, [BIN, 'runners', '--data-dir', dataDir, '--json'], { reject: false, env: { TEMPORAL_ADDRESS: '' } });
    expect(listed.exitCode, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as Array<{ workflowId: string; url?: string }>;
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row.url).toBe(`${ui}/namespaces/default/workflows/${encodeURIComponent(row.workflowId)}`);
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode, out + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/stopped: every runner cleaned up/);
    expect(vms()).toEqual([]);
    expect(processesUnder(dataDir)).toEqual([]);
    // Once it stopped, nothing on the data dir answers for it.
    const after = await execa(process.execPath, [BIN, 'runners', '--data-dir', dataDir], { reject: false, env: { TEMPORAL_ADDRESS: '' } });
    expect(after.exitCode).toBe(2);
    expect(after.stderr.trim()).toBe(`ekiden: --data-dir: no ekiden up is running on data dir ${dataDir}; start it with ekiden up --data-dir ${dataDir}, or give --address`);
  });
});
