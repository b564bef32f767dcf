/**
 * The GitHub client (octokit with retry and throttling, PAT and App auth) against the GitHub
 * emulator: idempotency of the runner calls and error classification.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitHubEmulator } from '../../emulator/github/server.js';
import { connectRunner, createJit } from '../../emulator/github/testing.js';
import { classifyGitHubError, createOctokit, GitHubError, scopeWebUrl, type GitHubScope } from '../../github/client.js';
import { leftoverRefusal, RunnerRegistry } from '../../github/runners.js';
import { FailureType } from '../../core/failures.js';
import { runnerName, runToken } from '../../core/names.js';

const NAME_1 = runnerName({ pool: 't', token: runToken('run-1') });
const NAME_2 = runnerName({ pool: 't', token: runToken('run-2') });
const NAME_3 = runnerName({ pool: 't', token: runToken('run-3') });

const TOKEN = 'ghp_runners_test_token';
const repo: GitHubScope = { kind: 'repo', owner: 'acme', repo: 'app' };
const org: GitHubScope = { kind: 'org', org: 'acme' };

describe('RunnerRegistry against the GitHub emulator', () => {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  let emu: GitHubEmulator;
  let url: string;
  const registry = (scope: GitHubScope = repo) => new RunnerRegistry(createOctokit({ apiUrl: url, auth: { kind: 'token', token: TOKEN }, scope, writeSpacingMs: 0 }), scope);

  beforeAll(async () => {
    emu = new GitHubEmulator({
      tokens: [TOKEN],
      repos: ['acme/app'],
      orgs: ['acme'],
      apps: [{ appId: 99, publicKeyPem: keys.publicKey, installations: [{ id: 5, account: 'acme' }] }],
    });
    ({ url } = await emu.start());
  });
  afterAll(async () => {
    await emu?.stop();
  });

  it('a JIT request retried after its response was lost ends with exactly one runner', async () => {
    const r = registry();
    const first = await r.createJitConfig({ name: NAME_1, labels: ['x'], runnerGroupId: 1 });
    // The "lost" first response: the same request again hits 409 and is resolved.
    const second = await r.createJitConfig({ name: NAME_1, labels: ['x'], runnerGroupId: 1 });
    expect(second.runnerId).not.toBe(first.runnerId);
    const named = emu.runners().filter((x) => x.name === NAME_1);
    expect(named.map((x) => x.id)).toEqual([second.runnerId]);
    expect(await r.removeRunner(second.runnerId)).toBe('removed');
  });

  it('a 409 on a runner that is online is not taken for a leftover: nothing is removed, the failure is final', async () => {
    const r = registry();
    const live = await r.createJitConfig({ name: NAME_3, labels: ['live'], runnerGroupId: 1 });
    await connectRunner(live.encodedJitConfig); // its runner process is up: somebody holds this config
    const err = await r.createJitConfig({ name: NAME_3, labels: ['live'], runnerGroupId: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubError);
    expect((err as GitHubError).type).toBe(FailureType.GitHubConflict);
    expect((err as GitHubError).retryable).toBe(false);
    expect((err as GitHubError).message).toMatch(/already exists and is online; it is not a leftover of this runner/);
    expect(emu.runners().filter((x) => x.name === NAME_3).map((x) => x.id)).toEqual([live.runnerId]);
  });

  it.each([
    ['offline and idle, named like ours: a leftover', { name: NAME_1, status: 'offline', busy: false }, undefined],
    ['online', { name: NAME_1, status: 'online', busy: false }, 'is online'],
    ['busy', { name: NAME_1, status: 'offline', busy: true }, 'is running a job'],
    ['not an Ekiden name', { name: 'build-box-7', status: 'offline', busy: false }, 'its name is not an Ekiden runner name'],
  ] as const)('leftover check: %s', (_why, runner, want) => {
    expect(leftoverRefusal(runner, runner.name)).toBe(want);
  });

  it('removing an unknown runner counts as done', async () => {
    expect(await registry().removeRunner(987654)).toBe('not-found');
  });

  it('removing a runner that runs a job reports busy', async () => {
    const r = registry();
    const jit = await r.createJitConfig({ name: NAME_2, labels: ['busy-test'], runnerGroupId: 1 });
    const conn = await connectRunner(jit.encodedJitConfig);
    const job = emu.queueJob({ repo: 'acme/app', labels: ['busy-test'], steps: [{ run: 'sleep 30' }] });
    let message = null;
    for (let i = 0; i < 20 && !message; i++) message = await conn.poll(200);
    expect(message?.type).toBe('job');
    expect(emu.job(job.id)?.status).toBe('in_progress');
    expect(await r.removeRunner(jit.runnerId)).toBe('busy');
  });

  it('lists every runner across Link-paginated pages', async () => {
    const r = registry(org);
    for (let i = 0; i < 230; i++) await createJit(emu, TOKEN, '/orgs/acme', `ekiden-p-${String(i).padStart(7, '0')}`, ['p']);
    const all = await r.listRunners();
    expect(all.filter((x) => x.name.startsWith('ekiden-p-'))).toHaveLength(230);
    expect((await r.findRunnerByName('ekiden-p-0000229'))?.name).toBe('ekiden-p-0000229');
  });

  it('GitHub App auth: an installation token is fetched with a JWT and used', async () => {
    const octokit = createOctokit({ apiUrl: url, auth: { kind: 'app', appId: 99, privateKey: keys.privateKey, installationId: 5 }, scope: org });
    const token = await new RunnerRegistry(octokit, org).createRegistrationToken();
    expect(token.token).toBeTruthy();
    expect(emu.secrets()).toContain(token.token);
  });

  it('a 5xx is retried inside the client', async () => {
    emu.injectFault({ path: 'registration-token', kind: 'status', status: 503, times: 1 });
    await expect(registry().createRegistrationToken()).resolves.toHaveProperty('token');
  });

  it.each([
    ['bad credentials → not retryable', { kind: 'status', status: 401 }, 'EkidenGitHubAuth', false],
    ['unknown scope → not retryable', undefined, 'EkidenGitHubScopeNotFound', false],
    ['primary rate limit (long reset) → retryable with a delay', { kind: 'primary-rate-limit', retryAfterSeconds: 120 }, 'EkidenGitHubRateLimited', true],
  ] as const)('classifies %s', async (_name, fault, type, retryable) => {
    const scope: GitHubScope = fault ? repo : { kind: 'repo', owner: 'acme', repo: 'missing' };
    if (fault) emu.injectFault({ path: 'registration-token', times: 3, ...fault });
    const err = await registry(scope).createRegistrationToken().catch((e: unknown) => e);
    emu.clearFaults();
    expect(err).toBeInstanceOf(GitHubError);
    expect((err as GitHubError).type).toBe(type);
    expect((err as GitHubError).retryable).toBe(retryable);
    if (type === 'EkidenGitHubRateLimited') expect((err as GitHubError).retryAfterSeconds).toBeGreaterThan(60);
  });

  it('network errors are retryable', () => {
    expect(classifyGitHubError(new Error('socket hang up'), 'x').retryable).toBe(true);
  });

  it.each([
    ['https://api.github.com', repo, 'https://github.com/acme/app'],
    ['https://ghes.example.com/api/v3', org, 'https://ghes.example.com/acme'],
  ] as const)('runner URL for %s', (api, scope, web) => {
    expect(scopeWebUrl(api, scope)).toBe(web);
  });
});
