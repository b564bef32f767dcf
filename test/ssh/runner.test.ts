import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SshEndpoint } from '../../drivers/types.js';
import { SshError, sshExec } from '../../ssh/client.js';
import { collectDiag, launchRunner, runnerStatus, stopRunner, type RunnerCredential } from '../../ssh/runner.js';
import { createFakeHost, isLivePid, pidsWhoseCmdline, waitFor, type FakeHost } from '../drivers/fake-fixture.js';

const runnerDir = 'actions-runner';

let h: FakeHost;
beforeAll(async () => {
  h = await createFakeHost();
});
afterAll(async () => {
  expect(await h.cleanup()).toEqual([]);
});

/** A fresh VM (one runner per guest) and its endpoint. */
async function freshGuest(): Promise<{ vm: string; endpoint: SshEndpoint; home: string }> {
  const vm = await h.startVm();
  const endpoint = await h.driver.sshEndpoint({ name: vm, timeoutMs: 10_000 });
  return { vm, endpoint, home: h.driver.vmDir(vm) };
}

function jit(): { secret: string; credential: RunnerCredential } {
  const secret = `EKIDEN-JIT-SECRET-${randomBytes(12).toString('hex')}`;
  return { secret, credential: { kind: 'jit', encodedJitConfig: secret } };
}

/** Watches every process's argv on this host (guest processes are host processes here). */
function argvWatch(secret: string): { stop(): number[] } {
  const hits = new Set<number>();
  let on = true;
  const tick = () => {
    for (const pid of pidsWhoseCmdline((cmd) => cmd.includes(secret))) hits.add(pid);
    if (on) setTimeout(tick, 2);
  };
  tick();
  return {
    stop() {
      on = false;
      for (const pid of pidsWhoseCmdline((cmd) => cmd.includes(secret))) hits.add(pid);
      return [...hits];
    },
  };
}

async function touch(endpoint: SshEndpoint, file: string, content = ''): Promise<void> {
  const res = await sshExec({ endpoint, command: `printf %s '${content}' > ${runnerDir}/${file}` });
  expect(res.exitCode).toBe(0);
}

describe('launchRunner', () => {
  it('starts run.sh detached: it outlives the SSH session, gets the JIT config by env and never on any argv', async () => {
    const { vm, endpoint, home } = await freshGuest();
    const { secret, credential } = jit();
    const watch = argvWatch(secret);
    const res = await launchRunner({ endpoint, runnerDir, credential });
    expect(res).toMatchObject({ alreadyRunning: false, alreadyLaunched: false });
    expect(res.pid).toBeGreaterThan(1);
    // Every SSH connection of launchRunner is closed by now; the runner lives on.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(isLivePid(res.pid)).toBe(true);
    expect(await h.driver.processes({ name: vm })).toContain(res.pid);
    expect(await readFile(join(home, runnerDir, '.seen-jitconfig'), 'utf8')).toBe(secret);
    expect(watch.stop()).toEqual([]);
    expect((await readFile(join(home, '.ekiden', 'runner.pid'), 'utf8')).trim()).toBe(String(res.pid));
    const status = await runnerStatus({ endpoint, runnerDir });
    expect(status).toEqual({ launched: true, running: true, pid: res.pid, jobStarted: false });
  });

  it('a retried launch, even a concurrent one, never starts a second runner', async () => {
    const { vm, endpoint } = await freshGuest();
    const { credential } = jit();
    const [a, b] = await Promise.all([
      launchRunner({ endpoint, runnerDir, credential }),
      launchRunner({ endpoint, runnerDir, credential }),
    ]);
    expect([a.alreadyLaunched, b.alreadyLaunched].sort()).toEqual([false, true]);
    expect(a.pid).toBe(b.pid);
    const again = await launchRunner({ endpoint, runnerDir, credential });
    expect(again).toEqual({ pid: a.pid, alreadyRunning: true, alreadyLaunched: true });
    const wrappers = pidsWhoseCmdline((cmd) => cmd.includes('ekiden-runner-wrapper') && cmd.includes(h.driver.vmDir(vm)));
    expect(wrappers).toEqual([a.pid]);
  });

  it('registration token: config.sh gets url/token/name/labels/group by env and the flags on argv; run.sh does not get the token', async () => {
    const { endpoint, home } = await freshGuest();
    const token = `EKIDEN-REG-TOKEN-${randomBytes(12).toString('hex')}`;
    const watch = argvWatch(token);
    await launchRunner({
      endpoint,
      runnerDir,
      credential: { kind: 'registration-token', url: 'https://github.com/acme/app', token, name: 'ekiden-p-abcdefg', labels: ['self-hosted', 'x64'], runnerGroup: 'builders' },
    });
    await waitFor('run.sh', async () => (await readFile(join(home, runnerDir, '.seen-token-by-run'), 'utf8').catch(() => undefined)) !== undefined);
    expect(watch.stop()).toEqual([]);
    const configured = await readFile(join(home, runnerDir, '.configured'), 'utf8');
    expect(configured).toContain('args=--unattended --ephemeral --replace --disableupdate\n');
    expect(configured).toContain(`token=${token}\n`);
    expect(configured).toContain('url=https://github.com/acme/app\n');
    expect(configured).toContain('name=ekiden-p-abcdefg\n');
    expect(configured).toContain('labels=self-hosted,x64\n');
    expect(configured).toContain('group=builders\n');
    expect(configured).toContain(`runasroot=${process.getuid?.() === 0 ? '1' : ''}\n`);
    expect(await readFile(join(home, runnerDir, '.seen-token-by-run'), 'utf8')).toBe('');
  });

  it('a failing config.sh ends the runner with its exit status', async () => {
    const { endpoint, home } = await freshGuest();
    await writeFile(join(home, runnerDir, '.config-fails'), '');
    await launchRunner({
      endpoint,
      runnerDir,
      credential: { kind: 'registration-token', url: 'https://github.com/acme/app', token: 't0ken-t0ken', name: 'n', labels: ['a'] },
    });
    const status = await waitFor('runner exit', async () => {
      const s = await runnerStatus({ endpoint, runnerDir });
      return s.running ? undefined : s;
    });
    expect(status).toMatchObject({ launched: true, running: false, exitCode: 3, jobStarted: false });
  });

  it('fails without leaking the secret when there is no run.sh', async () => {
    const { endpoint } = await freshGuest();
    const { secret, credential } = jit();
    const err = await launchRunner({ endpoint, runnerDir: 'no-such-dir', credential }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('failed');
    expect((err as SshError).message).toContain('no executable run.sh');
    expect((err as SshError).message).not.toContain(secret);
    expect((await runnerStatus({ endpoint, runnerDir })).launched).toBe(false);
  });
});

describe('runnerStatus', () => {
  it('follows the runner from launch through its job to its exit', async () => {
    const { endpoint } = await freshGuest();
    expect(await runnerStatus({ endpoint, runnerDir })).toEqual({ launched: false, running: false, jobStarted: false });
    const { pid } = await launchRunner({ endpoint, runnerDir, credential: jit().credential });
    expect(await runnerStatus({ endpoint, runnerDir })).toMatchObject({ launched: true, running: true, jobStarted: false });
    const before = Date.now();
    await touch(endpoint, '.take-job');
    const job = await waitFor('job', async () => {
      const s = await runnerStatus({ endpoint, runnerDir });
      return s.jobStarted ? s : undefined;
    });
    expect(job).toMatchObject({ running: true, jobId: '42', pid });
    expect(job.jobStartedAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
    expect(job.jobStartedAt).toBeLessThanOrEqual(Date.now());
    await touch(endpoint, '.finish-job', '7');
    const done = await waitFor('exit', async () => {
      const s = await runnerStatus({ endpoint, runnerDir });
      return s.running ? undefined : s;
    });
    expect(done).toMatchObject({ launched: true, running: false, exitCode: 7, jobStarted: true, jobId: '42' });
    expect(isLivePid(pid)).toBe(false);
    // Once launched, never again, even after the runner ended.
    expect(await launchRunner({ endpoint, runnerDir, credential: jit().credential })).toEqual({ pid, alreadyRunning: false, alreadyLaunched: true });
  });

  it('reads the GUID job id real runners log', async () => {
    const { endpoint, home } = await freshGuest();
    await mkdir(join(home, runnerDir, '_diag'), { recursive: true });
    const guid = '3f2504e0-4f89-11d3-9a0c-0305e82c3301';
    await writeFile(join(home, runnerDir, '_diag', 'Worker_20240101-000000-utc.log'), `[2024-01-01 00:00:00Z INFO JobRunner] Job ID ${guid}\n`);
    expect(await runnerStatus({ endpoint, runnerDir })).toMatchObject({ launched: false, jobStarted: true, jobId: guid });
  });
});

describe('stopRunner', () => {
  it('SIGTERMs the runner group; a no-op once it is gone', async () => {
    const { vm, endpoint } = await freshGuest();
    const { pid } = await launchRunner({ endpoint, runnerDir, credential: jit().credential });
    expect(await stopRunner({ endpoint, runnerDir, graceMs: 3_000 })).toEqual({ wasRunning: true, forced: false });
    expect(isLivePid(pid)).toBe(false);
    const status = await runnerStatus({ endpoint, runnerDir });
    expect(status).toMatchObject({ launched: true, running: false, exitCode: 143 });
    expect(await stopRunner({ endpoint, runnerDir })).toEqual({ wasRunning: false, forced: false });
    // Nothing of the runner is left in the guest.
    expect((await h.driver.processes({ name: vm })).length).toBe(1);
  });

  it('SIGKILLs a runner that ignores SIGTERM after the grace period', async () => {
    const { vm, endpoint, home } = await freshGuest();
    await writeFile(join(home, runnerDir, '.ignore-term'), '');
    const { pid } = await launchRunner({ endpoint, runnerDir, credential: jit().credential });
    const t0 = Date.now();
    expect(await stopRunner({ endpoint, runnerDir, graceMs: 500 })).toEqual({ wasRunning: true, forced: true });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(isLivePid(pid)).toBe(false);
    expect((await runnerStatus({ endpoint, runnerDir })).running).toBe(false);
    await waitFor('group gone', async () => (await h.driver.processes({ name: vm })).length === 1);
  });

  it('is a no-op in a guest where no runner was launched', async () => {
    const { endpoint } = await freshGuest();
    expect(await stopRunner({ endpoint, runnerDir })).toEqual({ wasRunning: false, forced: false });
  });
});

describe('collectDiag', () => {
  it('copies regular files of _diag (nested, binary, odd names), not symlinks', async () => {
    const { endpoint, home } = await freshGuest();
    const diag = join(home, runnerDir, '_diag');
    await mkdir(join(diag, 'pages'), { recursive: true });
    const binary = randomBytes(100_003);
    await writeFile(join(diag, 'Runner_1.log'), 'runner log\n');
    await writeFile(join(diag, 'pages', 'step 1.log'), binary);
    await writeFile(join(diag, 'Worker_1.log'), '');
    await symlink('/etc/hostname', join(diag, 'link.log'));
    await chmod(join(diag, 'Runner_1.log'), 0o600);
    const dest = join(h.dir, `diag-${randomBytes(3).toString('hex')}`);
    const files = await collectDiag({ endpoint, runnerDir, destDir: dest });
    expect(files).toEqual(['Runner_1.log', 'Worker_1.log', 'pages/step 1.log']);
    expect(await readFile(join(dest, 'Runner_1.log'), 'utf8')).toBe('runner log\n');
    expect((await readFile(join(dest, 'pages', 'step 1.log'))).equals(binary)).toBe(true);
    expect(await readFile(join(dest, 'Worker_1.log'), 'utf8')).toBe('');
    expect((await readdir(dest)).sort()).toEqual(['Runner_1.log', 'Worker_1.log', 'pages']);
  });

  it('returns an empty list when there is no _diag', async () => {
    const { endpoint } = await freshGuest();
    expect(await collectDiag({ endpoint, runnerDir: 'nowhere', destDir: join(h.dir, 'diag-empty') })).toEqual([]);
  });
});
