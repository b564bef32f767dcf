/**
 * TEST AND DEMO INFRASTRUCTURE — the runner stand-in as a real process (through the run.sh /
 * config.sh wrappers that installStandinRunner writes) against the GitHub emulator: JIT and
 * registration-token paths, success, failure, cancellation, SIGTERM, SIGKILL mid-job,
 * deletion while idle, invalid configs, diagnostics and secret hygiene.
 *
 * The stand-in (and the emulator's standalone entry) are compiled on their own (tsc on the two
 * entries into a temp dir), so these tests do not depend on the rest of the repository building.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GitHubEmulator } from '../../emulator/github/server.js';
import { api, createJit } from '../../emulator/github/testing.js';
import { installStandinRunner, STANDIN_ENTRY } from '../../emulator/runner/install.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TOKEN = 'ghp_runner_tests';

let buildDir: string;
let entry: string;
let emu: GitHubEmulator;
let work: string;
const children: ChildProcess[] = [];
const strayPids: number[] = [];

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(script: string, args: string[], cwd: string, env: Record<string, string> = {}): Proc {
  const child = spawn(script, args, { cwd, env: { ...process.env, RUNNER_ALLOW_RUNASROOT: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, output: () => out, exited };
}

async function exitOf(p: Proc, timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`process did not exit within ${timeoutMs} ms; output:\n${p.output()}`)), timeoutMs);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function runnerDir(name: string): Promise<string> {
  const dir = join(work, name);
  await installStandinRunner({ dir, entry });
  return dir;
}

function diag(dir: string, kind: 'Runner' | 'Worker'): string[] {
  const d = join(dir, '_diag');
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => f.startsWith(`${kind}_`))
    .map((f) => {
      expect(f).toMatch(new RegExp(`^${kind}_\\d{8}-\\d{6}-utc\\.log$`));
      return readFileSync(join(d, f), 'utf8');
    });
}

/** No secret the emulator issued appears in the process output or any diag log. */
function expectNoSecrets(dir: string, output: string): void {
  const texts = [output, ...diag(dir, 'Runner'), ...diag(dir, 'Worker')];
  const secrets = emu.secrets();
  expect(secrets.length).toBeGreaterThan(2);
  for (const s of secrets) for (const t of texts) expect(t.includes(s), `secret leaked: ${s.slice(0, 8)}…`).toBe(false);
}

beforeAll(() => {
  buildDir = mkdtempSync(join(tmpdir(), 'ekiden-standin-'));
  const tsc = join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
  execFileSync(
    process.execPath,
    [tsc, '--outDir', buildDir, '--rootDir', REPO_ROOT, '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--strict', '--skipLibCheck', '--types', 'node', join(REPO_ROOT, 'emulator/runner/main.ts'), join(REPO_ROOT, 'emulator/github/main.ts')],
    { cwd: REPO_ROOT, stdio: 'pipe' },
  );
  writeFileSync(join(buildDir, 'package.json'), '{"type":"module"}\n');
  entry = join(buildDir, 'emulator/runner/main.js');
}, 120_000);

afterAll(() => {
  rmSync(buildDir, { recursive: true, force: true });
});

beforeEach(async () => {
  work = mkdtempSync(join(tmpdir(), 'ekiden-runner-'));
  emu = new GitHubEmulator({ tokens: [TOKEN], repos: ['octo/hello'], orgs: ['octo'], offlineAfterMs: 1000 });
  await emu.start();
});

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of strayPids.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await emu.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('installStandinRunner', () => {
  it('writes executable run.sh/config.sh that exec node on the entry; the default entry is in dist', async () => {
    const dir = join(work, "it's here");
    const { runSh, configSh } = await installStandinRunner({ dir, entry, nodePath: '/opt/node/bin/node' });
    const run = await readFile(runSh, 'utf8');
    expect(run).toMatch(/^#!\/bin\/sh\n/);
    expect(run).toContain(`exec '/opt/node/bin/node' '${entry}' run "$@"`);
    expect(await readFile(configSh, 'utf8')).toContain(`'${entry}' config "$@"`);
    expect(execFileSync('sh', ['-c', 'test -x "$0" && test -x "$1" && echo ok', runSh, configSh]).toString().trim()).toBe('ok');
    expect(STANDIN_ENTRY).toBe(join(REPO_ROOT, 'dist/emulator/runner/main.js'));
  });
});

describe('standalone emulator (emulator/github/main.ts)', () => {
  it('prints its URL as one JSON line, serves the API, and stops on SIGTERM', async () => {
    const p = start(process.execPath, [join(buildDir, 'emulator/github/main.js'), '--port', '0', '--token', 'standalone-token'], work);
    let line = '';
    for (let i = 0; i < 200 && !line.includes('\n'); i++) {
      await new Promise((r) => setTimeout(r, 25));
      line = p.output();
    }
    const printed = JSON.parse(line.split('\n')[0]!) as { url: string; adminToken: string; token?: string };
    expect(printed).toEqual({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) as unknown, adminToken: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/) as unknown });
    expect((await api(printed.url, 'GET', '/_emulator/secrets')).status).toBe(401);
    expect((await api(printed.url, 'GET', '/_emulator/secrets', { admin: printed.adminToken })).status).toBe(200);
    expect((await api(printed.url, 'GET', '/orgs/o/actions/runners', { token: 'standalone-token' })).status).toBe(200);
    expect((await api(printed.url, 'GET', '/orgs/o/actions/runners', { token: 'other' })).status).toBe(401);
    p.child.kill('SIGTERM');
    expect(await exitOf(p)).toEqual({ code: 0, signal: null });
  }, 30_000);
});

describe('JIT runner (run.sh with ACTIONS_RUNNER_INPUT_JITCONFIG)', () => {
  it('goes online, runs its one job to success, is removed, exits 0, and logs Job ID', async () => {
    const dir = await runnerDir('jit-ok');
    const jit = await createJit(emu, TOKEN, '/repos/octo/hello', 'jit-ok', ['self-hosted', 'linux']);
    const p = start(join(dir, 'run.sh'), [], dir, { ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config });
    const online = await emu.waitForRunner({ id: jit.runner.id }, (r) => r?.status === 'online', 10_000);
    expect(online).toMatchObject({ os: 'Linux', version: '2.336.0', busy: false });
    expect(diag(dir, 'Runner')).toHaveLength(1);

    const job = emu.queueJob({
      repo: 'octo/hello',
      labels: ['self-hosted', 'linux'],
      name: 'build',
      steps: [
        { name: 'no credentials in the step env', run: 'test -z "${ACTIONS_RUNNER_INPUT_JITCONFIG:-}"' },
        { name: 'work', run: 'echo "hello from $GITHUB_REPOSITORY" | tee out.txt; test "$PWD" = "$GITHUB_WORKSPACE"' },
      ],
    });
    const done = await emu.waitForJob(job.id, undefined, 15_000);
    expect(done).toMatchObject({ status: 'completed', conclusion: 'success', runner_id: jit.runner.id, runner_name: 'jit-ok' });
    expect(done.steps.map((s) => [s.conclusion, s.exit_code])).toEqual([['success', 0], ['success', 0]]);
    expect(done.steps[1]!.log).toContain('hello from octo/hello');
    expect(await exitOf(p)).toEqual({ code: 0, signal: null });
    expect(emu.runners().find((r) => r.id === jit.runner.id)).toBeUndefined();
    expect(readFileSync(join(dir, '_work/hello/hello/out.txt'), 'utf8')).toBe('hello from octo/hello\n');

    const [worker, ...more] = diag(dir, 'Worker');
    expect(more).toHaveLength(0);
    expect(worker).toContain(`Job ID ${job.id}\n`);
    expect(worker).toMatch(/Job result after all job steps finish: Succeeded/);
    expect(p.output()).toContain('Listening for Jobs');
    expect(p.output()).toContain('Job build completed with result: Succeeded');
    expectNoSecrets(dir, p.output());
  }, 30_000);

  it('reports a failing step as a failed job, skips the rest, and still exits 0', async () => {
    const dir = await runnerDir('jit-fail');
    const jit = await createJit(emu, TOKEN, '/orgs/octo', 'jit-fail', ['self-hosted', 'big']);
    const job = emu.queueJob({ repo: 'octo/hello', labels: ['big'], steps: [{ run: 'echo before' }, { run: 'echo boom >&2; exit 7' }, { run: 'touch never' }] });
    const p = start(join(dir, 'run.sh'), [], dir, { ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config });
    const done = await emu.waitForJob(job.id, undefined, 15_000);
    expect(done.conclusion).toBe('failure');
    expect(done.steps.map((s) => s.conclusion)).toEqual(['success', 'failure', 'skipped']);
    expect(done.steps[1]).toMatchObject({ exit_code: 7, log: 'boom\n' });
    expect(await exitOf(p)).toEqual({ code: 0, signal: null });
    expect(existsSync(join(dir, '_work/hello/hello/never'))).toBe(false);
    expect(emu.runners()).toEqual([]);
    const [worker] = diag(dir, 'Worker');
    expect(worker).toContain(`Job ID ${job.id}\n`);
    expect(worker).toContain('Job result after all job steps finish: Failed');
    expectNoSecrets(dir, p.output());
  }, 30_000);

  it('accepts --jitconfig on argv too', async () => {
    const dir = await runnerDir('jit-argv');
    const jit = await createJit(emu, TOKEN, '/repos/octo/hello', 'jit-argv', ['x']);
    const job = emu.queueJob({ repo: 'octo/hello', labels: ['x'], steps: [{ run: 'true' }] });
    const p = start(join(dir, 'run.sh'), ['--jitconfig', jit.encoded_jit_config], dir);
    expect((await emu.waitForJob(job.id, undefined, 15_000)).conclusion).toBe('success');
    expect((await exitOf(p)).code).toBe(0);
  }, 30_000);

  it('job ends failed and the runner goes offline when the runner is SIGKILLed mid-job', async () => {
    const dir = await runnerDir('jit-kill');
    const jit = await createJit(emu, TOKEN, '/repos/octo/hello', 'jit-kill', ['x']);
    const job = emu.queueJob({ repo: 'octo/hello', labels: ['x'], steps: [{ run: 'echo $$ > "$RUNNER_TEMP/pid"; sleep 30' }] });
    const p = start(join(dir, 'run.sh'), [], dir, { ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config });
    await emu.waitForJob(job.id, (j) => j.steps[0]!.status === 'in_progress', 15_000);
    const pidFile = join(dir, '_work/_temp/pid');
    for (let i = 0; i < 100 && !existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 20));
    strayPids.push(Number(readFileSync(pidFile, 'utf8')));
    expect(emu.runners()[0]).toMatchObject({ status: 'online', busy: true });
    p.child.kill('SIGKILL');
    expect((await exitOf(p)).signal).toBe('SIGKILL');
    const done = await emu.waitForJob(job.id, undefined, 5000);
    expect(done.conclusion).toBe('failure');
    expect(done.failure_reason).toMatch(/lost communication/);
    expect(emu.runners()).toMatchObject([{ id: jit.runner.id, status: 'offline', busy: false }]);
    // Now it can be deleted.
    expect((await api(emu.url, 'DELETE', `/repos/octo/hello/actions/runners/${jit.runner.id}`, { token: TOKEN })).status).toBe(204);
  }, 30_000);

  it('SIGTERM mid-job cancels the job, takes the runner offline and exits 0', async () => {
    const dir = await runnerDir('jit-term');
    const jit = await createJit(emu, TOKEN, '/repos/octo/hello', 'jit-term', ['x']);
    const job = emu.queueJob({ repo: 'octo/hello', labels: ['x'], steps: [{ run: 'sleep 30' }, { run: 'true' }] });
    const p = start(join(dir, 'run.sh'), [], dir, { ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config });
    await emu.waitForJob(job.id, (j) => j.steps[0]!.status === 'in_progress', 15_000);
    p.child.kill('SIGTERM');
    expect(await exitOf(p)).toEqual({ code: 0, signal: null });
    const done = await emu.waitForJob(job.id, undefined, 5000);
    expect(done.conclusion).toBe('cancelled');
    expect(done.steps.map((s) => s.conclusion)).toEqual(['cancelled', 'skipped']);
    expect(diag(dir, 'Worker')[0]).toContain('Job result after all job steps finish: Canceled');
  }, 30_000);

  it('a job cancelled from the server stops the step; idle SIGTERM goes offline and exits 0', async () => {
    const dir = await runnerDir('jit-cancel');
    const jit = await createJit(emu, TOKEN, '/repos/octo/hello', 'jit-cancel', ['x']);
    const job = emu.queueJob({ repo: 'octo/hello', labels: ['x'], steps: [{ run: 'sleep 30' }] });
    const p = start(join(dir, 'run.sh'), [], dir, { ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config });
    await emu.waitForJob(job.id, (j) => j.steps[0]!.status === 'in_progress', 15_000);
    emu.cancelJob(job.id);
    expect((await emu.waitForJob(job.id, undefined, 10_000)).conclusion).toBe('cancelled');
    expect((await exitOf(p)).code).toBe(0);

    // An idle runner: SIGTERM takes it offline at once (no waiting for the offline timeout).
    const dir2 = await runnerDir('jit-idle');
    const idle = await createJit(emu, TOKEN, '/repos/octo/hello', 'jit-idle', ['y']);
    const q = start(join(dir2, 'run.sh'), [], dir2, { ACTIONS_RUNNER_INPUT_JITCONFIG: idle.encoded_jit_config });
    await emu.waitForRunner({ id: idle.runner.id }, (r) => r?.status === 'online', 10_000);
    q.child.kill('SIGTERM');
    expect(await exitOf(q)).toEqual({ code: 0, signal: null });
    expect(emu.runners().find((r) => r.id === idle.runner.id)).toMatchObject({ status: 'offline' });
  }, 30_000);

  it('exits 0 when its registration is deleted while it waits for a job', async () => {
    const dir = await runnerDir('jit-deleted');
    const jit = await createJit(emu, TOKEN, '/repos/octo/hello', 'jit-deleted', ['x']);
    const p = start(join(dir, 'run.sh'), [], dir, { ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config });
    await emu.waitForRunner({ id: jit.runner.id }, (r) => r?.status === 'online', 10_000);
    expect((await api(emu.url, 'DELETE', `/repos/octo/hello/actions/runners/${jit.runner.id}`, { token: TOKEN })).status).toBe(204);
    expect(await exitOf(p)).toEqual({ code: 0, signal: null });
    expect(p.output()).toContain('registration has been deleted');
  }, 30_000);

  it('exits non-zero for an invalid or missing config, without echoing it', async () => {
    const dir = await runnerDir('bad');
    const garbage = Buffer.from('{"not":"a config"}').toString('base64');
    const p = start(join(dir, 'run.sh'), [], dir, { ACTIONS_RUNNER_INPUT_JITCONFIG: garbage });
    expect((await exitOf(p)).code).toBe(1);
    expect(p.output()).not.toContain(garbage);
    const q = start(join(dir, 'run.sh'), [], dir);
    expect((await exitOf(q)).code).toBe(1);
    expect(q.output()).toContain('Not configured');
  }, 30_000);
});

describe('registration-token runner (config.sh, then run.sh)', () => {
  async function registrationToken(scopePath: string, kind = 'registration-token'): Promise<string> {
    const res = await api(emu.url, 'POST', `${scopePath}/actions/runners/${kind}`, { token: TOKEN });
    return (res.body as { token: string }).token;
  }

  it('configures from flags and env, runs one job as an ephemeral runner, then cleans up', async () => {
    const dir = await runnerDir('reg-eph');
    const token = await registrationToken('/repos/octo/hello');
    const cfg = start(join(dir, 'config.sh'), ['--url', `${emu.url}/octo/hello`, '--name', 'reg-eph', '--labels', 'gpu,big', '--ephemeral', '--unattended', '--replace', '--disableupdate'], dir, {
      ACTIONS_RUNNER_INPUT_TOKEN: token,
    });
    expect((await exitOf(cfg)).code, cfg.output()).toBe(0);
    expect(cfg.output()).toContain('Settings Saved');
    expect(JSON.parse(readFileSync(join(dir, '.runner'), 'utf8'))).toMatchObject({ agentName: 'reg-eph', ephemeral: true, gitHubUrl: `${emu.url}/octo/hello` });
    const [runner] = emu.runners();
    expect(runner).toMatchObject({ name: 'reg-eph', status: 'offline', ephemeral: true, jit: false, scope: 'repos/octo/hello' });
    expect(runner!.labels.map((l) => [l.name, l.type])).toEqual([
      ['self-hosted', 'read-only'],
      ['Linux', 'read-only'],
      [process.arch === 'arm64' ? 'ARM64' : 'X64', 'read-only'],
      ['gpu', 'custom'],
      ['big', 'custom'],
    ]);

    // Configuring again in the same folder is refused, like the real config.sh.
    const again = start(join(dir, 'config.sh'), ['--url', `${emu.url}/octo/hello`, '--token', token, '--unattended'], dir);
    expect((await exitOf(again)).code).toBe(1);
    expect(again.output()).toContain('already configured');

    const job = emu.queueJob({ repo: 'octo/hello', labels: ['self-hosted', 'Linux', 'gpu'], steps: [{ run: 'echo ok' }] });
    const run = start(join(dir, 'run.sh'), [], dir);
    expect((await emu.waitForJob(job.id, undefined, 15_000)).conclusion).toBe('success');
    expect(await exitOf(run)).toEqual({ code: 0, signal: null });
    expect(emu.runners()).toEqual([]);
    expect(existsSync(join(dir, '.runner'))).toBe(false);
    expect(existsSync(join(dir, '.credentials'))).toBe(false);
    expect(diag(dir, 'Worker')[0]).toContain(`Job ID ${job.id}\n`);
    expectNoSecrets(dir, cfg.output() + again.output() + run.output());
  }, 30_000);

  it('a persistent runner takes jobs one after another; --replace; config remove deletes it', async () => {
    const dir = await runnerDir('reg-persist');
    const token = await registrationToken('/orgs/octo');
    const env = {
      ACTIONS_RUNNER_INPUT_URL: `${emu.url}/octo`,
      ACTIONS_RUNNER_INPUT_TOKEN: token,
      ACTIONS_RUNNER_INPUT_NAME: 'persist',
      ACTIONS_RUNNER_INPUT_LABELS: 'pool-a',
      ACTIONS_RUNNER_INPUT_UNATTENDED: 'true',
    };
    expect((await exitOf(start(join(dir, 'config.sh'), [], dir, env))).code).toBe(0);
    // The same name elsewhere needs --replace.
    const other = await runnerDir('reg-persist-2');
    const clash = start(join(other, 'config.sh'), [], other, env);
    expect((await exitOf(clash)).code).toBe(1);
    expect(clash.output()).toContain('A runner exists with the same name');
    const replaced = start(join(other, 'config.sh'), ['--replace'], other, env);
    expect((await exitOf(replaced)).code).toBe(0);
    expect(emu.runners().map((r) => r.name)).toEqual(['persist']);
    const runnerId = emu.runners()[0]!.id;

    const run = start(join(other, 'run.sh'), [], other);
    const first = emu.queueJob({ repo: 'octo/hello', labels: ['pool-a'], steps: [{ run: 'true' }] });
    const second = emu.queueJob({ repo: 'octo/hello', labels: ['pool-a'], steps: [{ run: 'false' }] });
    expect((await emu.waitForJob(first.id, undefined, 15_000)).conclusion).toBe('success');
    expect((await emu.waitForJob(second.id, undefined, 15_000)).conclusion).toBe('failure');
    expect(emu.runners()).toMatchObject([{ id: runnerId, status: 'online', busy: false, ephemeral: false }]);
    const workers = diag(other, 'Worker').join('\n');
    expect(workers).toContain(`Job ID ${first.id}\n`);
    expect(workers).toContain(`Job ID ${second.id}\n`);
    expect(diag(other, 'Worker')).toHaveLength(2);
    run.child.kill('SIGINT');
    expect(await exitOf(run)).toEqual({ code: 0, signal: null });
    expect(emu.runners()).toMatchObject([{ id: runnerId, status: 'offline' }]);

    const removeToken = await registrationToken('/orgs/octo', 'remove-token');
    const rm = start(join(other, 'config.sh'), ['remove', '--token', removeToken], other);
    expect((await exitOf(rm)).code, rm.output()).toBe(0);
    expect(emu.runners()).toEqual([]);
    expect(existsSync(join(other, '.runner'))).toBe(false);
  }, 45_000);

  it('config fails with a bad token, and refuses root without RUNNER_ALLOW_RUNASROOT', async () => {
    const dir = await runnerDir('reg-bad');
    const bad = start(join(dir, 'config.sh'), ['--url', `${emu.url}/octo/hello`, '--token', 'WRONG', '--unattended'], dir);
    expect((await exitOf(bad)).code).toBe(1);
    expect(bad.output()).toContain('404');
    expect(existsSync(join(dir, '.runner'))).toBe(false);
    if (process.getuid?.() === 0) {
      const root = start(join(dir, 'config.sh'), ['--url', `${emu.url}/octo/hello`, '--token', 'x', '--unattended'], dir, { RUNNER_ALLOW_RUNASROOT: '' });
      expect((await exitOf(root)).code).toBe(1);
      expect(root.output()).toContain('Must not run with sudo');
    }
  }, 30_000);
});
