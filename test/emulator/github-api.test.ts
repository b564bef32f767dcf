/**
 * TEST AND DEMO INFRASTRUCTURE — the GitHub emulator's REST behaviour as a real
 * @octokit/rest client (with its plugins) sees it: pagination, errors, rate limits and other
 * injected faults, GitHub App authentication, job dispatch bookkeeping and the admin API.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Octokit } from '@octokit/rest';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { createAppAuth } from '@octokit/auth-app';
import { GitHubEmulator } from '../../emulator/github/server.js';
import { api, connectRunner, createJit, decodeJit } from '../../emulator/github/testing.js';

const TOKEN = 'ghp_test_token';
const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

let emu: GitHubEmulator;
let octokit: Octokit;

beforeEach(async () => {
  emu = new GitHubEmulator({ tokens: [TOKEN], repos: ['octo/hello', 'octo/other', 'someone/else'], orgs: ['octo', 'someone'], offlineAfterMs: 1000 });
  await emu.start();
  octokit = new Octokit({ baseUrl: emu.url, auth: TOKEN, log: quiet });
});

afterEach(async () => {
  await emu.stop();
});

describe('runners through @octokit/rest', () => {
  it('paginates 250 runners with per_page 100 via the Link header', async () => {
    for (let i = 0; i < 250; i += 25) {
      await Promise.all(
        Array.from({ length: 25 }, (_, j) =>
          octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'octo', repo: 'hello', name: `r-${i + j}`, runner_group_id: 1, labels: ['x'] }),
        ),
      );
    }
    const pages: number[] = [];
    const runners = await octokit.paginate(octokit.rest.actions.listSelfHostedRunnersForRepo, { owner: 'octo', repo: 'hello', per_page: 100 }, (response) => {
      pages.push(response.data.length);
      return response.data;
    });
    expect(pages).toEqual([100, 100, 50]);
    expect(runners).toHaveLength(250);
    expect(new Set(runners.map((r) => r.name)).size).toBe(250);
    const ids = runners.map((r) => r.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));

    const page2 = await octokit.rest.actions.listSelfHostedRunnersForRepo({ owner: 'octo', repo: 'hello', per_page: 100, page: 2 });
    expect(page2.data.total_count).toBe(250);
    const link = page2.headers.link ?? '';
    for (const [page, rel] of [[1, 'prev'], [3, 'next'], [3, 'last'], [1, 'first']] as const) {
      expect(link).toMatch(new RegExp(`<${emu.url}/repos/octo/hello/actions/runners\\?per_page=100&page=${page}>; rel="${rel}"`));
    }
    const single = await octokit.rest.actions.listSelfHostedRunnersForRepo({ owner: 'octo', repo: 'hello' });
    expect(single.data.runners).toHaveLength(30); // GitHub's default per_page
    const byName = await octokit.rest.actions.listSelfHostedRunnersForRepo({ owner: 'octo', repo: 'hello', name: 'r-117' });
    expect(byName.data.runners.map((r) => r.name)).toEqual(['r-117']);
    expect(byName.headers.link).toBeUndefined();
  }, 30_000);

  it('returns 409 for a taken name, 422 for bad input, 404 for unknown scopes, 401 for bad tokens', async () => {
    const ok = await octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'octo', repo: 'hello', name: 'dup', runner_group_id: 1, labels: ['a'] });
    expect(ok.status).toBe(201);
    await expect(
      octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'octo', repo: 'hello', name: 'dup', runner_group_id: 1, labels: ['a'] }),
    ).rejects.toMatchObject({ status: 409, response: { data: { message: expect.stringContaining('already exists') as unknown } } });
    // Same name in another scope is fine.
    await expect(octokit.rest.actions.generateRunnerJitconfigForOrg({ org: 'octo', name: 'dup', runner_group_id: 1, labels: ['a'] })).resolves.toMatchObject({ status: 201 });
    await expect(
      octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'octo', repo: 'hello', name: 'x', runner_group_id: 1, labels: [] }),
    ).rejects.toMatchObject({ status: 422, response: { data: { errors: [expect.any(String)] as unknown } } });
    const untyped: string = 'POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig'; // no runner_group_id
    await expect(octokit.request(untyped, { owner: 'octo', repo: 'hello', name: 'x', labels: ['a'] })).rejects.toMatchObject({ status: 422 });
    await expect(
      octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'octo', repo: 'hello', name: 'x', runner_group_id: 99, labels: ['a'] }),
    ).rejects.toMatchObject({ status: 422 });
    await expect(
      octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'octo', repo: 'missing', name: 'x', runner_group_id: 1, labels: ['a'] }),
    ).rejects.toMatchObject({ status: 404 });
    const anon = new Octokit({ baseUrl: emu.url, auth: 'wrong', log: quiet });
    await expect(anon.rest.actions.listSelfHostedRunnersForOrg({ org: 'octo' })).rejects.toMatchObject({
      status: 401,
      response: { data: { message: 'Bad credentials' } },
    });
  });

  it('gets and deletes runners; a deleted runner is 404; org and repo runners are separate', async () => {
    const { data } = await octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'octo', repo: 'hello', name: 'one', runner_group_id: 1, labels: ['self-hosted', 'gpu'] });
    expect(data.runner).toMatchObject({ name: 'one', status: 'offline', busy: false, ephemeral: true, os: 'unknown' });
    expect(data.runner.labels.map((l) => [l.name, l.type])).toEqual([['self-hosted', 'custom'], ['gpu', 'custom']]);
    await octokit.rest.actions.generateRunnerJitconfigForOrg({ org: 'octo', name: 'org-one', runner_group_id: 1, labels: ['a'] });
    const got = await octokit.rest.actions.getSelfHostedRunnerForRepo({ owner: 'octo', repo: 'hello', runner_id: data.runner.id });
    expect(got.data.name).toBe('one');
    const org = await octokit.rest.actions.listSelfHostedRunnersForOrg({ org: 'octo' });
    expect(org.data.runners.map((r) => r.name)).toEqual(['org-one']);
    await expect(octokit.rest.actions.getSelfHostedRunnerForOrg({ org: 'octo', runner_id: data.runner.id })).rejects.toMatchObject({ status: 404 });

    const del = await octokit.rest.actions.deleteSelfHostedRunnerFromRepo({ owner: 'octo', repo: 'hello', runner_id: data.runner.id });
    expect(del.status).toBe(204);
    await expect(octokit.rest.actions.getSelfHostedRunnerForRepo({ owner: 'octo', repo: 'hello', runner_id: data.runner.id })).rejects.toMatchObject({ status: 404 });
    await expect(octokit.rest.actions.deleteSelfHostedRunnerFromRepo({ owner: 'octo', repo: 'hello', runner_id: data.runner.id })).rejects.toMatchObject({ status: 404 });
    // The name is free again.
    await expect(
      octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'octo', repo: 'hello', name: 'one', runner_group_id: 1, labels: ['a'] }),
    ).resolves.toMatchObject({ status: 201 });
  });

  it('refuses to delete a runner while it runs a job (422), allows it after', async () => {
    const jit = await createJit(emu, TOKEN, '/repos/octo/hello', 'busy-one', ['self-hosted', 'linux']);
    const runner = await connectRunner(jit.encoded_jit_config);
    const job = emu.queueJob({ repo: 'octo/hello', labels: ['linux'], steps: [{ run: 'true' }] });
    const msg = await runner.poll();
    expect(msg).toMatchObject({ type: 'job', job: { id: job.id } });
    const r = await octokit.rest.actions.getSelfHostedRunnerForRepo({ owner: 'octo', repo: 'hello', runner_id: jit.runner.id });
    expect(r.data).toMatchObject({ status: 'online', busy: true });
    await expect(octokit.rest.actions.deleteSelfHostedRunnerFromRepo({ owner: 'octo', repo: 'hello', runner_id: jit.runner.id })).rejects.toMatchObject({
      status: 422,
      response: { data: { message: expect.stringContaining('is still running a job') as unknown } },
    });
    // The runner stops polling: it goes offline, its job fails, and deletion works.
    const failed = await emu.waitForJob(job.id, (j) => j.status === 'completed', 5000);
    expect(failed.conclusion).toBe('failure');
    expect(emu.runners().find((x) => x.id === jit.runner.id)).toMatchObject({ status: 'offline', busy: false });
    await expect(octokit.rest.actions.deleteSelfHostedRunnerFromRepo({ owner: 'octo', repo: 'hello', runner_id: jit.runner.id })).resolves.toMatchObject({ status: 204 });
  });

  it('lists the Default runner group (id 1) and issues registration and remove tokens', async () => {
    const groups = await octokit.request('GET /orgs/{org}/actions/runner-groups', { org: 'octo' });
    expect(groups.data.total_count).toBe(1);
    expect(groups.data.runner_groups[0]).toMatchObject({ id: 1, name: 'Default', default: true });
    const reg = await octokit.rest.actions.createRegistrationTokenForRepo({ owner: 'octo', repo: 'hello' });
    expect(reg.status).toBe(201);
    expect(reg.data.token).toMatch(/^[A-Z0-9]{29}$/);
    expect(Date.parse(reg.data.expires_at) - Date.now()).toBeGreaterThan(3500_000);
    const rm = await octokit.rest.actions.createRemoveTokenForOrg({ org: 'octo' });
    expect(rm.status).toBe(201);
    expect(emu.secrets()).toEqual(expect.arrayContaining([reg.data.token, rm.data.token]));
  });

  it('supports enterprise scopes through octokit.request', async () => {
    const res = await octokit.request('POST /enterprises/{enterprise}/actions/runners/generate-jitconfig', {
      enterprise: 'acme',
      name: 'ent-1',
      runner_group_id: 1,
      labels: ['a'],
    });
    expect(res.status).toBe(201);
    const list = await octokit.request('GET /enterprises/{enterprise}/actions/runners', { enterprise: 'acme' });
    expect((list.data as { runners: Array<{ name: string }> }).runners.map((r) => r.name)).toEqual(['ent-1']);
  });
});

describe('headers, rate limits and faults', () => {
  it('sends rate-limit headers and a request id on every response, and counts requests', async () => {
    const a = await octokit.rest.actions.listSelfHostedRunnersForOrg({ org: 'octo' });
    const b = await octokit.rest.actions.listSelfHostedRunnersForOrg({ org: 'octo' });
    expect(a.headers['x-ratelimit-limit']).toBe('5000');
    expect(a.headers['x-ratelimit-resource']).toBe('core');
    expect(Number(a.headers['x-ratelimit-remaining']) - Number(b.headers['x-ratelimit-remaining'])).toBe(1);
    expect(Number(b.headers['x-ratelimit-used'])).toBe(2);
    expect(Number(a.headers['x-ratelimit-reset'])).toBeGreaterThan(Date.now() / 1000);
    expect(a.headers['x-github-request-id']).not.toBe(b.headers['x-github-request-id']);
    expect((await api(emu.url, 'GET', '/orgs/octo/actions/runners', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await api(emu.url, 'GET', '/orgs/octo/actions/runners', { authorization: `Basic ${TOKEN}` })).status).toBe(401);
    const unauth = await api(emu.url, 'GET', '/orgs/octo/actions/runners');
    expect(unauth.status).toBe(401);
    expect(unauth.headers.get('x-ratelimit-limit')).toBe('60');
  });

  it('injects a primary rate limit: 403, remaining 0, reset a second ahead; plugin-throttling waits and retries', async () => {
    emu.injectFault({ kind: 'primary-rate-limit', path: '/orgs/octo/actions/runners$' });
    const raw = await api(emu.url, 'GET', '/orgs/octo/actions/runners', { token: TOKEN });
    expect(raw.status).toBe(403);
    expect(raw.headers.get('x-ratelimit-remaining')).toBe('0');
    const reset = Number(raw.headers.get('x-ratelimit-reset'));
    expect(reset - Date.now() / 1000).toBeGreaterThan(0);
    expect(reset - Date.now() / 1000).toBeLessThanOrEqual(2);
    expect((raw.body as { message: string }).message).toMatch(/^API rate limit exceeded for /);
    // The fault was used up.
    expect((await api(emu.url, 'GET', '/orgs/octo/actions/runners', { token: TOKEN })).status).toBe(200);

    const Throttled = Octokit.plugin(throttling);
    const seen: Array<[string, number]> = [];
    const client = new Throttled({
      baseUrl: emu.url,
      auth: TOKEN,
      log: quiet,
      throttle: {
        retryAfterBaseValue: 100, // wait a tenth of what GitHub asks: keeps the test fast
        onRateLimit: (after: number) => (seen.push(['primary', after]), true),
        onSecondaryRateLimit: (after: number) => (seen.push(['secondary', after]), true),
      },
    });
    emu.injectFault({ kind: 'primary-rate-limit', path: '/orgs/octo/actions/runners$' });
    const res = await client.rest.actions.listSelfHostedRunnersForOrg({ org: 'octo' });
    expect(res.status).toBe(200);
    expect(seen.map((s) => s[0])).toEqual(['primary']);
    expect(seen[0]![1]).toBeGreaterThanOrEqual(1);
  }, 15_000);

  it('injects a secondary rate limit with retry-after; plugin-throttling honours it', async () => {
    emu.injectFault({ kind: 'secondary-rate-limit', method: 'POST', retryAfterSeconds: 1 });
    const raw = await api(emu.url, 'POST', '/orgs/octo/actions/runners/registration-token', { token: TOKEN });
    expect(raw.status).toBe(403);
    expect(raw.headers.get('retry-after')).toBe('1');
    expect(raw.headers.get('x-ratelimit-remaining')).not.toBe('0');
    expect((raw.body as { message: string }).message).toContain('You have exceeded a secondary rate limit');

    const Throttled = Octokit.plugin(throttling);
    const seen: number[] = [];
    const client = new Throttled({
      baseUrl: emu.url,
      auth: TOKEN,
      log: quiet,
      throttle: { onRateLimit: () => false, onSecondaryRateLimit: (after: number) => (seen.push(after), true) },
    });
    emu.injectFault({ kind: 'secondary-rate-limit', method: 'POST', retryAfterSeconds: 1, status: 429 });
    const res = await client.rest.actions.createRegistrationTokenForOrg({ org: 'octo' });
    expect(res.status).toBe(201);
    expect(seen).toEqual([1]);
  }, 15_000);

  it('injects 5xx twice, then plugin-retry succeeds; faults match method and path only', async () => {
    emu.injectFault({ kind: 'status', status: 502, times: 2, path: '^/repos/octo/hello/' });
    emu.injectFault({ kind: 'status', status: 500, method: 'DELETE' });
    // Other paths and methods are untouched.
    expect((await api(emu.url, 'GET', '/repos/octo/other/actions/runners', { token: TOKEN })).status).toBe(200);
    const raw = await api(emu.url, 'GET', '/repos/octo/hello/actions/runners', { token: TOKEN });
    expect(raw.status).toBe(502);
    expect(raw.headers.get('x-ratelimit-limit')).toBe('5000');
    expect(raw.body).toMatchObject({ message: 'Bad Gateway' });
    expect(emu.faults().map((f) => f.remaining)).toEqual([1, 1]);

    const Retrying = Octokit.plugin(retry);
    const client = new Retrying({ baseUrl: emu.url, auth: TOKEN, log: quiet, retry: { retryAfterBaseValue: 1 } });
    const res = await client.rest.actions.listSelfHostedRunnersForRepo({ owner: 'octo', repo: 'hello' });
    expect(res.status).toBe(200);
    expect(emu.faults().map((f) => f.method)).toEqual(['DELETE']);
    emu.clearFaults();
    expect(emu.faults()).toEqual([]);
  });

  it('delays responses and supports unlimited faults through the admin API', async () => {
    const created = await api(emu.url, 'POST', '/_emulator/faults', { admin: emu.adminToken, body: { kind: 'delay', delayMs: 300, path: 'runner-groups', times: -1 } });
    expect(created.status).toBe(201);
    for (let i = 0; i < 2; i++) {
      const start = Date.now();
      const res = await octokit.request('GET /orgs/{org}/actions/runner-groups', { org: 'octo' });
      expect(res.status).toBe(200);
      expect(Date.now() - start).toBeGreaterThanOrEqual(290);
    }
    expect((await api(emu.url, 'GET', '/_emulator/faults', { admin: emu.adminToken })).body).toMatchObject([{ kind: 'delay', remaining: -1 }]);
    expect((await api(emu.url, 'DELETE', '/_emulator/faults', { admin: emu.adminToken })).status).toBe(204);
    expect(emu.faults()).toEqual([]);
    expect((await api(emu.url, 'POST', '/_emulator/faults', { admin: emu.adminToken, body: { kind: 'explode' } })).status).toBe(400);
    expect((await api(emu.url, 'POST', '/_emulator/faults', { admin: emu.adminToken, body: { kind: 'status', path: '(' } })).status).toBe(400);
    expect((await api(emu.url, 'POST', '/_emulator/faults', { admin: emu.adminToken, body: { kind: 'status', times: 0 } })).status).toBe(400);
  });

  it('enforces the configured primary rate limit by itself', async () => {
    const small = new GitHubEmulator({ tokens: [TOKEN], rateLimit: 2 });
    await small.start();
    try {
      expect((await api(small.url, 'GET', '/orgs/o/actions/runners', { token: TOKEN })).status).toBe(200);
      expect((await api(small.url, 'GET', '/orgs/o/actions/runners', { token: TOKEN })).status).toBe(200);
      const limited = await api(small.url, 'GET', '/orgs/o/actions/runners', { token: TOKEN });
      expect(limited.status).toBe(403);
      expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
      expect((limited.body as { message: string }).message).toMatch(/^API rate limit exceeded for user ID/);
    } finally {
      await small.stop();
    }
  });
});

describe('GitHub App authentication', () => {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const jwt = (key: string, claims: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url({ iat: now - 30, exp: now + 540, iss: 42, ...claims })}`;
    return `${unsigned}.${sign('RSA-SHA256', Buffer.from(unsigned), key).toString('base64url')}`;
  };
  let appEmu: GitHubEmulator;

  beforeEach(async () => {
    appEmu = new GitHubEmulator({
      repos: ['octo/hello', 'octo/second', 'someone/else'],
      orgs: ['octo'],
      apps: [{ appId: 42, publicKeyPem: keys.publicKey, installations: [{ id: 7, account: 'octo' }] }],
    });
    await appEmu.start();
  });
  afterEach(async () => {
    await appEmu.stop();
  });

  it('issues an installation token for a valid JWT and accepts it like a PAT, within the installation', async () => {
    const res = await api(appEmu.url, 'POST', '/app/installations/7/access_tokens', { authorization: `Bearer ${jwt(keys.privateKey)}` });
    expect(res.status).toBe(201);
    const body = res.body as { token: string; expires_at: string; permissions: Record<string, string> };
    expect(body.token).toMatch(/^ghs_[A-Za-z0-9]{36}$/);
    expect(body.permissions).toMatchObject({ administration: 'write', organization_self_hosted_runners: 'write' });
    expect(appEmu.secrets()).toContain(body.token);
    const client = new Octokit({ baseUrl: appEmu.url, auth: body.token, log: quiet });
    await expect(client.rest.actions.listSelfHostedRunnersForOrg({ org: 'octo' })).resolves.toMatchObject({ status: 200 });
    await expect(client.rest.actions.createRegistrationTokenForRepo({ owner: 'octo', repo: 'hello' })).resolves.toMatchObject({ status: 201 });
    await expect(client.rest.actions.listSelfHostedRunnersForRepo({ owner: 'someone', repo: 'else' })).rejects.toMatchObject({ status: 404 });
    await expect(client.request('GET /enterprises/{e}/actions/runners', { e: 'acme' })).rejects.toMatchObject({ status: 403 });

    const limited = await api(appEmu.url, 'POST', '/app/installations/7/access_tokens', {
      authorization: `Bearer ${jwt(keys.privateKey)}`,
      body: { repositories: ['hello'] },
    });
    const limitedClient = new Octokit({ baseUrl: appEmu.url, auth: (limited.body as { token: string }).token, log: quiet });
    await expect(limitedClient.rest.actions.listSelfHostedRunnersForRepo({ owner: 'octo', repo: 'hello' })).resolves.toMatchObject({ status: 200 });
    await expect(limitedClient.rest.actions.listSelfHostedRunnersForRepo({ owner: 'octo', repo: 'second' })).rejects.toMatchObject({ status: 404 });
  });

  it('rejects JWTs with a wrong key, wrong issuer, expired or far-future exp, and non-JWTs', async () => {
    const now = Math.floor(Date.now() / 1000);
    const bad = [
      jwt(other.privateKey),
      jwt(keys.privateKey, { iss: 43 }),
      jwt(keys.privateKey, { exp: now - 1 }),
      jwt(keys.privateKey, { exp: now + 3600 }),
      jwt(keys.privateKey, { iat: now + 600 }),
      'not-a-jwt',
    ];
    for (const token of bad) {
      const res = await api(appEmu.url, 'POST', '/app/installations/7/access_tokens', { authorization: `Bearer ${token}` });
      expect(res.status, token).toBe(401);
    }
    // A JWT is not an installation token.
    expect((await api(appEmu.url, 'GET', '/orgs/octo/actions/runners', { authorization: `Bearer ${jwt(keys.privateKey)}` })).status).toBe(401);
    expect((await api(appEmu.url, 'GET', '/app/installations/7', { authorization: `Bearer ${jwt(keys.privateKey)}` })).body).toMatchObject({ id: 7, app_id: 42, account: { login: 'octo', type: 'Organization' } });
  });

  it('works with @octokit/auth-app end to end', async () => {
    const client = new Octokit({
      baseUrl: appEmu.url,
      authStrategy: createAppAuth,
      auth: { appId: 42, privateKey: keys.privateKey, installationId: 7 },
      log: quiet,
    });
    const res = await client.rest.actions.generateRunnerJitconfigForOrg({ org: 'octo', name: 'app-runner', runner_group_id: 1, labels: ['self-hosted'] });
    expect(res.status).toBe(201);
    const list = await client.rest.actions.listSelfHostedRunnersForOrg({ org: 'octo' });
    expect(list.data.runners.map((r) => r.name)).toEqual(['app-runner']);
  });
});

describe('JIT configs, secrets and the admin API', () => {
  it('the admin API answers only with the per-run admin token', async () => {
    for (const [method, path] of [['GET', '/_emulator/secrets'], ['POST', '/_emulator/tokens'], ['GET', '/_emulator/state']] as const) {
      const anon = await api(emu.url, method, path, { body: method === 'POST' ? { token: 'ghp_minted' } : undefined });
      expect(anon.status).toBe(401);
      expect(JSON.stringify(anon.body)).toMatch(/x-emulator-admin/);
      const wrong = await api(emu.url, method, path, { admin: `${emu.adminToken}x`, body: method === 'POST' ? { token: 'ghp_minted' } : undefined });
      expect(wrong.status).toBe(401);
    }
    // Nothing was minted by the refused requests.
    expect((await api(emu.url, 'GET', '/repos/octo/hello/actions/runners', { token: 'ghp_minted' })).status).toBe(401);
    expect((await api(emu.url, 'GET', '/_emulator/state', { admin: emu.adminToken })).status).toBe(200);
  });

  it('encodes .runner/.credentials/.credentials_rsaparams and lists every secret it issued', async () => {
    const { data } = await octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: 'octo', repo: 'hello', name: 'sec', runner_group_id: 1, labels: ['a'], work_folder: 'w' });
    const { settings, credentials, rsa, files } = decodeJit(data.encoded_jit_config);
    expect(settings).toMatchObject({ agentId: data.runner.id, agentName: 'sec', poolId: 1, serverUrl: emu.url, gitHubUrl: `${emu.url}/octo/hello`, workFolder: 'w', ephemeral: true });
    expect(credentials).toMatchObject({ scheme: 'OAuth', data: { authorizationUrl: `${emu.url}/_emulator/runner-api/oauth2/token` } });
    const secrets = (await api(emu.url, 'GET', '/_emulator/secrets', { admin: emu.adminToken })).body as string[];
    expect(secrets).toEqual(expect.arrayContaining([TOKEN, data.encoded_jit_config, credentials.data.clientId, rsa.d, files['.credentials'], files['.credentials_rsaparams']]));
    // The secret authenticates this runner and no other.
    const token = await fetch(credentials.data.authorizationUrl, {
      method: 'POST',
      body: JSON.stringify({ client_id: credentials.data.clientId, client_secret: `${rsa.d}x` }),
    });
    expect(token.status).toBe(401);
  });

  it('uses runnerBaseUrl in configs when given', async () => {
    const guestView = new GitHubEmulator({ tokens: [TOKEN], runnerBaseUrl: (u) => u.replace('127.0.0.1', '10.0.2.2') });
    const { url } = await guestView.start();
    try {
      const jit = await createJit(guestView, TOKEN, '/orgs/o', 'g');
      expect(decodeJit(jit.encoded_jit_config).settings.serverUrl).toBe(url.replace('127.0.0.1', '10.0.2.2'));
    } finally {
      await guestView.stop();
    }
  });

  it('queues jobs over HTTP, dispatches by labels and scope, and reports them', async () => {
    const bad = await api(emu.url, 'POST', '/_emulator/jobs', { admin: emu.adminToken, body: { repo: 'octo/hello', labels: [], steps: [] } });
    expect(bad.status).toBe(400);
    const created = await api(emu.url, 'POST', '/_emulator/jobs', { admin: emu.adminToken, body: { repo: 'octo/hello', labels: ['self-hosted', 'gpu'], steps: [{ run: 'echo hi' }], name: 'test' } });
    expect(created.status).toBe(201);
    const job = created.body as { id: number; status: string; conclusion: null; runner_id: null; runner_name: null; run_id: number };
    expect(job).toMatchObject({ status: 'queued', conclusion: null, runner_id: null, runner_name: null, labels: ['self-hosted', 'gpu'] });

    // Wrong labels, wrong repo, and another org's runner do not get it.
    const noGpu = await connectRunner((await createJit(emu, TOKEN, '/repos/octo/hello', 'no-gpu', ['self-hosted'])).encoded_jit_config);
    const otherRepo = await connectRunner((await createJit(emu, TOKEN, '/repos/octo/other', 'other-repo', ['self-hosted', 'gpu'])).encoded_jit_config);
    const otherOrg = await connectRunner((await createJit(emu, TOKEN, '/orgs/someone', 'other-org', ['self-hosted', 'gpu'])).encoded_jit_config);
    expect(await noGpu.poll(50)).toBeNull();
    expect(await otherRepo.poll(50)).toBeNull();
    expect(await otherOrg.poll(50)).toBeNull();
    // An org runner of the repo's owner with all labels (case-insensitive) does.
    const orgJit = await createJit(emu, TOKEN, '/orgs/octo', 'org-gpu', ['Self-Hosted', 'GPU', 'extra']);
    const orgRunner = await connectRunner(orgJit.encoded_jit_config);
    const polled = orgRunner.poll(2000);
    const msg = await polled;
    expect(msg).toMatchObject({ type: 'job', job: { id: job.id, steps: [{ number: 1, run: 'echo hi' }] } });
    const running = (await api(emu.url, 'GET', `/_emulator/jobs/${job.id}`, { admin: emu.adminToken })).body;
    expect(running).toMatchObject({ status: 'in_progress', runner_id: orgJit.runner.id, runner_name: 'org-gpu', runner_group_id: 1 });
    const state = (await api(emu.url, 'GET', '/_emulator/state', { admin: emu.adminToken })).body as { runners: unknown[]; jobs: unknown[] };
    expect(state.runners).toHaveLength(4);
    expect(state.jobs).toHaveLength(1);
    expect((await api(emu.url, 'GET', '/_emulator/runners', { admin: emu.adminToken })).body).toHaveLength(4);
    expect((await api(emu.url, 'GET', '/_emulator/jobs/999', { admin: emu.adminToken })).status).toBe(404);
  });

  it('cancels queued jobs', async () => {
    const job = emu.queueJob({ repo: 'octo/hello', labels: ['nobody'], steps: [{ run: 'true' }] });
    const cancelled = await api(emu.url, 'POST', `/_emulator/jobs/${job.id}/cancel`, { admin: emu.adminToken });
    expect(cancelled.body).toMatchObject({ status: 'completed', conclusion: 'cancelled' });
    await expect(emu.waitForJob(job.id)).resolves.toMatchObject({ conclusion: 'cancelled' });
    expect(() => emu.queueJob({ repo: 'octo/missing', labels: ['x'], steps: [{ run: 'true' }] })).toThrow(/does not exist/);
  });

  it('waitForJob times out with the job state in the message', async () => {
    const job = emu.queueJob({ repo: 'octo/hello', labels: ['nobody'], steps: [{ run: 'true' }] });
    await expect(emu.waitForJob(job.id, undefined, 100)).rejects.toThrow(/timed out .*"status":"queued"/);
  });
});
