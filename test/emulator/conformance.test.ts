/**
 * TEST AND DEMO INFRASTRUCTURE — the emulator's responses checked against GitHub's published
 * OpenAPI description (npm @octokit/openapi, api.github.com.deref.json): every status code must
 * be documented for its operation and every body must validate against that response's schema.
 *
 * GitHub answers 401 (bad credentials), 403 (rate limits) and 404 (unknown resource) on any
 * endpoint, but the description lists them only on some operations; where an operation does not
 * list them, the body is checked against the description's own "Basic Error" schema instead.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateKeyPairSync, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitHubEmulator } from '../../emulator/github/server.js';
import { validateSchema, type Schema } from '../../emulator/github/json-schema.js';
import { api, connectRunner, createJit, type Res } from '../../emulator/github/testing.js';

interface Operation {
  responses: Record<string, { content?: { 'application/json'?: { schema?: Schema } } }>;
}

const DESCRIPTION = fileURLToPath(new URL('../../node_modules/@octokit/openapi/generated/api.github.com.deref.json', import.meta.url));

/** (method, path template) pairs the emulator implements and this file exercises. */
const OPERATIONS = [
  ['POST', '/repos/{owner}/{repo}/actions/runners/registration-token'],
  ['POST', '/orgs/{org}/actions/runners/registration-token'],
  ['POST', '/repos/{owner}/{repo}/actions/runners/remove-token'],
  ['POST', '/orgs/{org}/actions/runners/remove-token'],
  ['POST', '/repos/{owner}/{repo}/actions/runners/generate-jitconfig'],
  ['POST', '/orgs/{org}/actions/runners/generate-jitconfig'],
  ['GET', '/repos/{owner}/{repo}/actions/runners'],
  ['GET', '/orgs/{org}/actions/runners'],
  ['GET', '/repos/{owner}/{repo}/actions/runners/{runner_id}'],
  ['GET', '/orgs/{org}/actions/runners/{runner_id}'],
  ['DELETE', '/repos/{owner}/{repo}/actions/runners/{runner_id}'],
  ['DELETE', '/orgs/{org}/actions/runners/{runner_id}'],
  ['GET', '/orgs/{org}/actions/runner-groups'],
  ['POST', '/app/installations/{installation_id}/access_tokens'],
  ['GET', '/app/installations/{installation_id}'],
] as const;

type OperationKey = `${(typeof OPERATIONS)[number][0]} ${(typeof OPERATIONS)[number][1]}`;

const ops = new Map<string, Operation>();
let basicError: Schema;

/** Problems with a response for the operation; empty when it conforms. */
function conformance(op: OperationKey, res: Res): string[] {
  const operation = ops.get(op);
  if (!operation) return [`${op} is not in the description`];
  const problems: string[] = [];
  for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-used', 'x-ratelimit-reset', 'x-ratelimit-resource', 'x-github-request-id']) {
    if (!res.headers.get(h)) problems.push(`header ${h} missing`);
  }
  if (res.headers.get('content-type') !== 'application/json; charset=utf-8') problems.push(`content-type ${res.headers.get('content-type')}`);
  const documented = operation.responses[String(res.status)];
  let schema: Schema | undefined;
  if (documented) {
    schema = documented.content?.['application/json']?.schema;
  } else if ([401, 403, 404].includes(res.status)) {
    schema = basicError;
    const body = res.body as { message?: unknown; documentation_url?: unknown } | undefined;
    if (typeof body?.message !== 'string' || typeof body.documentation_url !== 'string') problems.push('error body lacks message/documentation_url');
  } else {
    return [...problems, `status ${res.status} is not documented for ${op} (documented: ${Object.keys(operation.responses).join(', ')})`];
  }
  if (!schema) {
    if (res.body !== undefined) problems.push(`status ${res.status} has no content, got a body`);
    return problems;
  }
  return [...problems, ...validateSchema(schema, res.body)];
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function appJwt(appId: number, privateKey: string, exp?: number): string {
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url({ iat: now - 30, exp: exp ?? now + 540, iss: appId })}`;
  return `${unsigned}.${sign('RSA-SHA256', Buffer.from(unsigned), privateKey).toString('base64url')}`;
}

const TOKEN = 'ghp_conformance';
const keys = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });

let emu: GitHubEmulator;
const fx = { repoRunnerId: 0, orgRunnerId: 0, busyRunnerId: 0, deletableRepo: 0, deletableOrg: 0 };

beforeAll(async () => {
  const description = JSON.parse(readFileSync(DESCRIPTION, 'utf8')) as { paths: Record<string, Record<string, Operation>> };
  for (const [method, path] of OPERATIONS) {
    const op = description.paths[path]?.[method.toLowerCase()];
    if (op) ops.set(`${method} ${path}`, op);
  }
  basicError = description.paths['/app/installations/{installation_id}/access_tokens']!['post']!.responses['404']!.content!['application/json']!.schema!;

  emu = new GitHubEmulator({
    tokens: [TOKEN],
    repos: ['octo/hello'],
    orgs: ['octo'],
    offlineAfterMs: 600_000, // the busy runner below must stay busy for the whole file
    apps: [{ appId: 42, publicKeyPem: keys.publicKey, installations: [{ id: 7, account: 'octo' }] }],
  });
  await emu.start();
  fx.repoRunnerId = (await createJit(emu, TOKEN, '/repos/octo/hello', 'conf-repo')).runner.id;
  fx.orgRunnerId = (await createJit(emu, TOKEN, '/orgs/octo', 'conf-org')).runner.id;
  fx.deletableRepo = (await createJit(emu, TOKEN, '/repos/octo/hello', 'conf-del-repo')).runner.id;
  fx.deletableOrg = (await createJit(emu, TOKEN, '/orgs/octo', 'conf-del-org')).runner.id;
  // A runner that holds a job, for DELETE → 422.
  const busy = await createJit(emu, TOKEN, '/repos/octo/hello', 'conf-busy', ['busy-label']);
  fx.busyRunnerId = busy.runner.id;
  const runner = await connectRunner(busy.encoded_jit_config);
  emu.queueJob({ repo: 'octo/hello', labels: ['busy-label'], steps: [{ run: 'true' }] });
  const msg = await runner.poll();
  if (msg?.type !== 'job') throw new Error('busy runner did not get its job');
}, 60_000);

afterAll(async () => {
  await emu?.stop();
});

describe('the conformance check itself', () => {
  it('loaded every operation from the description', () => {
    expect([...ops.keys()].sort()).toEqual(OPERATIONS.map(([m, p]) => `${m} ${p}`).sort());
  });

  it('rejects bodies and statuses that do not match', () => {
    const headers = new Headers({
      'content-type': 'application/json; charset=utf-8',
      'x-ratelimit-limit': '1',
      'x-ratelimit-remaining': '1',
      'x-ratelimit-used': '0',
      'x-ratelimit-reset': '1',
      'x-ratelimit-resource': 'core',
      'x-github-request-id': 'x',
    });
    const runner = { id: 1, name: 'r', os: 'linux', status: 'online', busy: false, labels: [{ id: 1, name: 'x', type: 'custom' }] };
    const list: OperationKey = 'GET /repos/{owner}/{repo}/actions/runners';
    expect(conformance(list, { status: 200, headers, body: { total_count: 1, runners: [runner] } })).toEqual([]);
    expect(conformance(list, { status: 200, headers, body: { total_count: 1, runners: [{ ...runner, busy: 'no' }] } })).not.toEqual([]);
    expect(conformance(list, { status: 200, headers, body: { total_count: 1, runners: [{ ...runner, labels: [{ name: 'x', type: 'bogus' }] }] } })).not.toEqual([]);
    expect(conformance(list, { status: 200, headers, body: { runners: [] } })).not.toEqual([]);
    expect(conformance(list, { status: 418, headers, body: { message: 'teapot' } })).not.toEqual([]);
    expect(conformance('DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}', { status: 204, headers, body: { unexpected: true } })).not.toEqual([]);
    expect(conformance(list, { status: 200, headers: new Headers({ 'content-type': 'text/html' }), body: { total_count: 0, runners: [] } })).not.toEqual([]);
  });
});

describe('responses conform to the OpenAPI description', () => {
  const bad = { authorization: 'token nope' };
  const jwt = () => ({ authorization: `Bearer ${appJwt(42, keys.privateKey)}` });
  const tooMany = Array.from({ length: 101 }, (_, i) => `l${i}`);
  const cases: Array<[string, OperationKey, number, () => Promise<Res>]> = [
    ['repo registration token', 'POST /repos/{owner}/{repo}/actions/runners/registration-token', 201, () => api(emu.url, 'POST', '/repos/octo/hello/actions/runners/registration-token', { token: TOKEN })],
    ['org registration token', 'POST /orgs/{org}/actions/runners/registration-token', 201, () => api(emu.url, 'POST', '/orgs/octo/actions/runners/registration-token', { token: TOKEN })],
    ['repo remove token', 'POST /repos/{owner}/{repo}/actions/runners/remove-token', 201, () => api(emu.url, 'POST', '/repos/octo/hello/actions/runners/remove-token', { token: TOKEN })],
    ['org remove token', 'POST /orgs/{org}/actions/runners/remove-token', 201, () => api(emu.url, 'POST', '/orgs/octo/actions/runners/remove-token', { token: TOKEN })],
    ['registration token, bad credentials', 'POST /repos/{owner}/{repo}/actions/runners/registration-token', 401, () => api(emu.url, 'POST', '/repos/octo/hello/actions/runners/registration-token', bad)],
    ['registration token, no credentials', 'POST /orgs/{org}/actions/runners/registration-token', 401, () => api(emu.url, 'POST', '/orgs/octo/actions/runners/registration-token')],
    ['registration token, unknown repo', 'POST /repos/{owner}/{repo}/actions/runners/registration-token', 404, () => api(emu.url, 'POST', '/repos/octo/nope/actions/runners/registration-token', { token: TOKEN })],
    ['repo JIT config', 'POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig', 201, () => api(emu.url, 'POST', '/repos/octo/hello/actions/runners/generate-jitconfig', { token: TOKEN, body: { name: 'conf-new', runner_group_id: 1, labels: ['a'], work_folder: '_w' } })],
    ['org JIT config', 'POST /orgs/{org}/actions/runners/generate-jitconfig', 201, () => api(emu.url, 'POST', '/orgs/octo/actions/runners/generate-jitconfig', { token: TOKEN, body: { name: 'conf-new', runner_group_id: 1, labels: ['a'] } })],
    ['JIT config, name taken', 'POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig', 409, () => api(emu.url, 'POST', '/repos/octo/hello/actions/runners/generate-jitconfig', { token: TOKEN, body: { name: 'conf-repo', runner_group_id: 1, labels: ['a'] } })],
    ['org JIT config, name taken', 'POST /orgs/{org}/actions/runners/generate-jitconfig', 409, () => api(emu.url, 'POST', '/orgs/octo/actions/runners/generate-jitconfig', { token: TOKEN, body: { name: 'conf-org', runner_group_id: 1, labels: ['a'] } })],
    ['JIT config, no labels', 'POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig', 422, () => api(emu.url, 'POST', '/repos/octo/hello/actions/runners/generate-jitconfig', { token: TOKEN, body: { name: 'x', runner_group_id: 1 } })],
    ['JIT config, empty labels', 'POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig', 422, () => api(emu.url, 'POST', '/repos/octo/hello/actions/runners/generate-jitconfig', { token: TOKEN, body: { name: 'x', runner_group_id: 1, labels: [] } })],
    ['JIT config, 101 labels', 'POST /orgs/{org}/actions/runners/generate-jitconfig', 422, () => api(emu.url, 'POST', '/orgs/octo/actions/runners/generate-jitconfig', { token: TOKEN, body: { name: 'x', runner_group_id: 1, labels: tooMany } })],
    ['JIT config, no name', 'POST /orgs/{org}/actions/runners/generate-jitconfig', 422, () => api(emu.url, 'POST', '/orgs/octo/actions/runners/generate-jitconfig', { token: TOKEN, body: { runner_group_id: 1, labels: ['a'] } })],
    ['JIT config, unknown repo', 'POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig', 404, () => api(emu.url, 'POST', '/repos/octo/nope/actions/runners/generate-jitconfig', { token: TOKEN, body: { name: 'x', runner_group_id: 1, labels: ['a'] } })],
    ['JIT config, unknown org', 'POST /orgs/{org}/actions/runners/generate-jitconfig', 404, () => api(emu.url, 'POST', '/orgs/nope/actions/runners/generate-jitconfig', { token: TOKEN, body: { name: 'x', runner_group_id: 1, labels: ['a'] } })],
    ['JIT config, bad credentials', 'POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig', 401, () => api(emu.url, 'POST', '/repos/octo/hello/actions/runners/generate-jitconfig', { ...bad, body: { name: 'x', runner_group_id: 1, labels: ['a'] } })],
    ['list repo runners', 'GET /repos/{owner}/{repo}/actions/runners', 200, () => api(emu.url, 'GET', '/repos/octo/hello/actions/runners?per_page=2', { token: TOKEN })],
    ['list org runners', 'GET /orgs/{org}/actions/runners', 200, () => api(emu.url, 'GET', '/orgs/octo/actions/runners', { token: TOKEN })],
    ['list runners by name', 'GET /repos/{owner}/{repo}/actions/runners', 200, () => api(emu.url, 'GET', '/repos/octo/hello/actions/runners?name=conf-repo', { token: TOKEN })],
    ['list runners, bad credentials', 'GET /repos/{owner}/{repo}/actions/runners', 401, () => api(emu.url, 'GET', '/repos/octo/hello/actions/runners', bad)],
    ['list runners, unknown repo', 'GET /repos/{owner}/{repo}/actions/runners', 404, () => api(emu.url, 'GET', '/repos/octo/nope/actions/runners', { token: TOKEN })],
    ['get repo runner', 'GET /repos/{owner}/{repo}/actions/runners/{runner_id}', 200, () => api(emu.url, 'GET', `/repos/octo/hello/actions/runners/${fx.repoRunnerId}`, { token: TOKEN })],
    ['get busy runner', 'GET /repos/{owner}/{repo}/actions/runners/{runner_id}', 200, () => api(emu.url, 'GET', `/repos/octo/hello/actions/runners/${fx.busyRunnerId}`, { token: TOKEN })],
    ['get org runner', 'GET /orgs/{org}/actions/runners/{runner_id}', 200, () => api(emu.url, 'GET', `/orgs/octo/actions/runners/${fx.orgRunnerId}`, { token: TOKEN })],
    ['get unknown runner', 'GET /repos/{owner}/{repo}/actions/runners/{runner_id}', 404, () => api(emu.url, 'GET', '/repos/octo/hello/actions/runners/999999', { token: TOKEN })],
    ['get org runner via repo', 'GET /repos/{owner}/{repo}/actions/runners/{runner_id}', 404, () => api(emu.url, 'GET', `/repos/octo/hello/actions/runners/${fx.orgRunnerId}`, { token: TOKEN })],
    ['delete repo runner', 'DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}', 204, () => api(emu.url, 'DELETE', `/repos/octo/hello/actions/runners/${fx.deletableRepo}`, { token: TOKEN })],
    ['delete org runner', 'DELETE /orgs/{org}/actions/runners/{runner_id}', 204, () => api(emu.url, 'DELETE', `/orgs/octo/actions/runners/${fx.deletableOrg}`, { token: TOKEN })],
    ['delete busy runner', 'DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}', 422, () => api(emu.url, 'DELETE', `/repos/octo/hello/actions/runners/${fx.busyRunnerId}`, { token: TOKEN })],
    ['delete unknown runner', 'DELETE /orgs/{org}/actions/runners/{runner_id}', 404, () => api(emu.url, 'DELETE', '/orgs/octo/actions/runners/999999', { token: TOKEN })],
    ['delete runner, bad credentials', 'DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}', 401, () => api(emu.url, 'DELETE', `/repos/octo/hello/actions/runners/${fx.repoRunnerId}`, bad)],
    ['runner groups', 'GET /orgs/{org}/actions/runner-groups', 200, () => api(emu.url, 'GET', '/orgs/octo/actions/runner-groups', { token: TOKEN })],
    ['runner groups, unknown org', 'GET /orgs/{org}/actions/runner-groups', 404, () => api(emu.url, 'GET', '/orgs/nope/actions/runner-groups', { token: TOKEN })],
    ['installation token', 'POST /app/installations/{installation_id}/access_tokens', 201, () => api(emu.url, 'POST', '/app/installations/7/access_tokens', jwt())],
    ['installation token for selected repos', 'POST /app/installations/{installation_id}/access_tokens', 201, () => api(emu.url, 'POST', '/app/installations/7/access_tokens', { ...jwt(), body: { repositories: ['hello'], permissions: { administration: 'write' } } })],
    ['installation token, unknown installation', 'POST /app/installations/{installation_id}/access_tokens', 404, () => api(emu.url, 'POST', '/app/installations/8/access_tokens', jwt())],
    ['installation token, PAT instead of JWT', 'POST /app/installations/{installation_id}/access_tokens', 401, () => api(emu.url, 'POST', '/app/installations/7/access_tokens', { token: TOKEN })],
    ['installation token, expired JWT', 'POST /app/installations/{installation_id}/access_tokens', 401, () => api(emu.url, 'POST', '/app/installations/7/access_tokens', { authorization: `Bearer ${appJwt(42, keys.privateKey, Math.floor(Date.now() / 1000) - 5)}` })],
    ['get installation', 'GET /app/installations/{installation_id}', 200, () => api(emu.url, 'GET', '/app/installations/7', jwt())],
    ['get unknown installation', 'GET /app/installations/{installation_id}', 404, () => api(emu.url, 'GET', '/app/installations/8', jwt())],
  ];

  it.each(cases)('%s → %s %i', async (_name, op, status, request) => {
    const res = await request();
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    expect(conformance(op, res)).toEqual([]);
  });

  it('covers every operation and the statuses the brief names', () => {
    expect(new Set(cases.map((c) => c[1]))).toEqual(new Set(OPERATIONS.map(([m, p]) => `${m} ${p}`)));
    expect(new Set(cases.map((c) => c[2]))).toEqual(new Set([200, 201, 204, 401, 404, 409, 422]));
  });

  it('a rate-limited response conforms too (403 with the error shape)', async () => {
    emu.injectFault({ kind: 'primary-rate-limit', path: '/actions/runners$' });
    const res = await api(emu.url, 'GET', '/repos/octo/hello/actions/runners', { token: TOKEN });
    expect(res.status).toBe(403);
    expect(conformance('GET /repos/{owner}/{repo}/actions/runners', res)).toEqual([]);
  });
});
