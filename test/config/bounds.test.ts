/**
 * Every number of the fleet config file has a range and every name a shape (config/bounds.ts):
 * the largest allowed value parses, one more is refused with one line naming the field, the
 * range and a fix — and values like 1e300, which are whole numbers to JavaScript, never reach
 * a workflow.
 */
import { describe, expect, it } from 'vitest';
import { BOUNDS, imageProblem, intProblem, parseIntText, ruleText } from '../../config/bounds.js';
import { ConfigError } from '../../config/fields.js';
import { parseFleetConfig } from '../../config/fleet.js';
import { errorMessage } from '../../core/failures.js';

type Json = Record<string, unknown>;

const pool = (extra: Json = {}): Json => ({ name: 'p', hosts: ['h'], image: 'ekiden/debian:12', labels: ['self-hosted'], ...extra });
const host = (extra: Json = {}, driver: Json = { kind: 'fake', root: '/r', images: {} }): Json => ({ id: 'h', dataDir: '/d', driver, ...extra });
const qemu = (extra: Json): Json => host({}, { kind: 'qemu', root: '/r', imagesDir: '/i', ...extra });
const tart = (extra: Json): Json => host({}, { kind: 'tart', root: '/r', ...extra });

function errorOf(raw: unknown): string {
  try {
    parseFleetConfig(raw, {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return errorMessage(err);
  }
  throw new Error('expected a ConfigError');
}

/** [field path, a document with `value` at that field, the rule]. */
const NUMBERS: Array<[string, (value: unknown) => unknown, (typeof BOUNDS)[keyof typeof BOUNDS]]> = [
  ['pools[0].size', (v) => ({ pools: [pool({ size: v, max: 1000 })] }), BOUNDS.poolSize],
  ['pools[0].minIdle', (v) => ({ pools: [pool({ minIdle: v, max: 1000 })] }), BOUNDS.poolMinIdle],
  ['pools[0].max', (v) => ({ pools: [pool({ max: v })] }), BOUNDS.poolMax],
  ['pools[0].maxRunners', (v) => ({ pools: [pool({ maxRunners: v })] }), BOUNDS.maxRunners],
  ['pools[0].cpu', (v) => ({ pools: [pool({ cpu: v })] }), BOUNDS.cpu],
  ['pools[0].memoryMb', (v) => ({ pools: [pool({ memoryMb: v })] }), BOUNDS.memoryMb],
  ['pools[0].runnerGroupId', (v) => ({ pools: [pool({ runnerGroupId: v })] }), BOUNDS.runnerGroupId],
  ['pools[0].timing.pullTimeoutMs', (v) => ({ pools: [pool({ timing: { pullTimeoutMs: v } })] }), BOUNDS.timingMs],
  ['pools[0].timing.bootTimeoutMs', (v) => ({ pools: [pool({ timing: { bootTimeoutMs: v } })] }), BOUNDS.timingMs],
  ['pools[0].timing.idleTimeoutMs', (v) => ({ pools: [pool({ timing: { idleTimeoutMs: v } })] }), BOUNDS.timingMs],
  ['pools[0].timing.maxJobMs', (v) => ({ pools: [pool({ timing: { maxJobMs: v } })] }), BOUNDS.timingMs],
  ['pools[0].timing.heartbeatTimeoutMs', (v) => ({ pools: [pool({ timing: { heartbeatTimeoutMs: v } })] }), BOUNDS.timingMs],
  ['pools[0].timing.hostCleanupTimeoutMs', (v) => ({ pools: [pool({ timing: { hostCleanupTimeoutMs: v } })] }), BOUNDS.timingMs],
  ['pools[0].timing.deregisterTimeoutMs', (v) => ({ pools: [pool({ timing: { deregisterTimeoutMs: v } })] }), BOUNDS.timingMs],
  ['pools[0].timing.bootAttempts', (v) => ({ pools: [pool({ timing: { bootAttempts: v } })] }), BOUNDS.bootAttempts],
  ['pools[0].backoff.initialMs', (v) => ({ pools: [pool({ backoff: { initialMs: v, maxMs: BOUNDS.backoffMs.max } })] }), BOUNDS.backoffMs],
  ['pools[0].backoff.maxMs', (v) => ({ pools: [pool({ backoff: { initialMs: 1, maxMs: v } })] }), BOUNDS.backoffMs],
  ['hosts[0].capacity', (v) => ({ hosts: [host({ capacity: v })] }), BOUNDS.hostCapacity],
  ['hosts[0].pollIntervalMs', (v) => ({ hosts: [host({ pollIntervalMs: v })] }), BOUNDS.timingMs],
  ['hosts[0].shutdownGraceMs', (v) => ({ hosts: [host({ shutdownGraceMs: v })] }), BOUNDS.graceMs],
  ['hosts[0].driver.bootDelayMs', (v) => ({ hosts: [host({}, { kind: 'fake', root: '/r', images: {}, bootDelayMs: v })] }), BOUNDS.bootDelayMs],
  ['hosts[0].driver.cpu', (v) => ({ hosts: [qemu({ cpu: v })] }), BOUNDS.cpu],
  ['hosts[0].driver.memoryMb', (v) => ({ hosts: [qemu({ memoryMb: v })] }), BOUNDS.memoryMb],
  ['hosts[0].driver.maxRunning', (v) => ({ hosts: [qemu({ maxRunning: v })] }), BOUNDS.hostCapacity],
  ['hosts[0].driver.maxRunning', (v) => ({ hosts: [tart({ maxRunning: v })] }), BOUNDS.hostCapacity],
  ['github.writeSpacingMs', (v) => ({ github: { scope: 'org:acme', auth: { tokenEnv: 'T' }, writeSpacingMs: v } }), BOUNDS.writeSpacingMs],
  ['github.auth.appId', (v) => ({ github: { scope: 'org:acme', auth: { appId: v, installationId: 1, privateKeyFile: '/k.pem' } } }), BOUNDS.githubId],
  ['github.auth.installationId', (v) => ({ github: { scope: 'org:acme', auth: { appId: 1, installationId: v, privateKeyFile: '/k.pem' } } }), BOUNDS.githubId],
  ['webhook.port', (v) => ({ webhook: { port: v } }), BOUNDS.port],
  ['webhook.maxBodyBytes', (v) => ({ webhook: { maxBodyBytes: v } }), BOUNDS.maxBodyBytes],
];

describe('every number of the config file is bounded', () => {
  it.each(NUMBERS)('%s: its minimum and maximum parse; below, above, 1e300, fractions and strings do not', (field, doc, rule) => {
    expect(() => parseFleetConfig(doc(rule.min), {})).not.toThrow();
    expect(() => parseFleetConfig(doc(rule.max), {})).not.toThrow();
    const rangeText = `is not a whole number from ${rule.min} to ${rule.max} (${rule.unit}); write e.g. `;
    const bad = [rule.min - 1, rule.max + 1, 1e300, rule.min + 0.5, Infinity, true];
    if (rule !== BOUNDS.githubId) bad.push(String(rule.min) as unknown as number);
    for (const value of bad) {
      const message = errorOf(doc(value));
      expect(message.split('\n'), message).toHaveLength(1);
      expect(message.startsWith(`${field}: `), message).toBe(true);
      expect(message, String(value)).toContain(rangeText);
    }
  });

  it('the hostile values of the report: 1e300 pools, idle timeouts and runner groups are refused at the edge', () => {
    expect(errorOf({ pools: [pool({ size: 1e300, max: 1e300 })] })).toBe('pools[0].size: 1e+300 is not a whole number from 0 to 1000 (runners); write e.g. 2');
    expect(errorOf({ pools: [pool({ max: 1e300 })] })).toBe('pools[0].max: 1e+300 is not a whole number from 1 to 1000 (runners); write e.g. 4');
    expect(errorOf({ pools: [pool({ timing: { idleTimeoutMs: 1e300 } })] })).toBe(
      'pools[0].timing.idleTimeoutMs: 1e+300 is not a whole number from 1 to 2592000000 (ms, at most 30 days); write e.g. 3600000',
    );
    expect(errorOf({ pools: [pool({ runnerGroupId: 1e300 })] })).toBe(
      'pools[0].runnerGroupId: 1e+300 is not a whole number from 1 to 2147483647 (a GitHub runner group id); write e.g. 1',
    );
    expect(errorOf({ hosts: [host({ capacity: 1e300 })] })).toBe('hosts[0].capacity: 1e+300 is not a whole number from 1 to 256 (VMs at once); write e.g. 2');
  });

  it('timing examples are the defaults', () => {
    expect(errorOf({ pools: [pool({ timing: { bootTimeoutMs: 0 } })] })).toMatch(/write e\.g\. 300000$/);
    expect(errorOf({ pools: [pool({ timing: { bootAttempts: 11 } })] })).toBe(
      'pools[0].timing.bootAttempts: 11 is not a whole number from 1 to 10 (fresh VMs per runner); write e.g. 2',
    );
  });

  it('GitHub ids may be written as digit strings, nothing else', () => {
    const app = (appId: unknown) => ({ github: { scope: 'org:acme', auth: { appId, installationId: '42', privateKeyFile: '/k.pem' } } });
    expect(parseFleetConfig(app('123'), {}).github!.auth).toEqual({ kind: 'app', appId: 123, installationId: 42, privateKeyFile: '/k.pem' });
    for (const bad of ['0x10', '1e3', ' 3', '', '-1']) expect(errorOf(app(bad))).toMatch(/^github\.auth\.appId: ".*" is not a whole number from 1 to /);
    expect(errorOf({ github: { scope: 'org:acme', auth: { appId: 1, privateKeyFile: '/k.pem' } } })).toBe(
      'github.auth.installationId: missing; write the numeric installation id, e.g. 123456',
    );
  });

  it('the CLI rule is the same rule, read from decimal digits only', () => {
    for (const [text, ok] of [['12', true], ['007', true], ['1e3', false], ['0x10', false], [' 3', false], ['3 ', false], ['+3', false], ['1.0', false], ['', false], ['1001', false], ['-1', false]] as const) {
      const parsed = parseIntText('--size', text, BOUNDS.poolSize);
      expect('value' in parsed, text).toBe(ok);
      if (!ok) expect((parsed as { problem: string }).problem).toContain(`"${text}" is not ${ruleText(BOUNDS.poolSize)}`);
    }
    expect(intProblem('pools[0].size', 1001, BOUNDS.poolSize)!.replace('pools[0].size: 1001', '')).toBe(
      (parseIntText('--size', '1001', BOUNDS.poolSize) as { problem: string }).problem.replace('--size: "1001"', ''),
    );
  });
});

describe('names, images, labels and directories are checked at the edge', () => {
  it.each([
    'img',
    'ekiden/debian:12',
    'ghcr.io/cirruslabs/macos-sequoia-xcode:latest',
    'registry.test/ekiden/macos-runner:latest',
    'localhost:5000/team/runner:v1.2_3',
    `ghcr.io/acme/runner@sha256:${'a'.repeat(64)}`,
    `ghcr.io/acme/runner:1@sha256:${'b'.repeat(64)}`,
    'qemu:debian-bookworm-runner',
    'qemu:/var/cache/ekiden/images/debian.v2',
    'ekiden/runner-standin:test',
  ])('image %j is accepted', (image) => {
    expect(imageProblem('pools[0].image', image)).toBeUndefined();
    expect(parseFleetConfig({ pools: [pool({ image })] }, {}).pools[0]!.image).toBe(image);
  });

  it.each([
    ['qemu:../../etc', 'a ".." path segment'],
    ['qemu:..', 'a ".." path segment'],
    ['qemu:/var/../etc', 'a ".." path segment'],
    ['../images/x', 'a ".." path segment'],
    ['ghcr.io/a/../b:1', 'a ".." path segment'],
    ['qemu:Debian', 'qemu:NAME takes lower-case letters'],
    ['qemu:/var/./x', 'qemu:/DIR must be an absolute path'],
    ['ekiden/debian:12 --privileged', 'whitespace or control characters'],
    ['ekiden/debian:12\n', 'whitespace or control characters'],
    ['img\u0000', 'whitespace or control characters'],
    ['--insecure', 'not [REGISTRY/]PATH'],
    ['Ghcr.io/Acme/Runner', 'not [REGISTRY/]PATH'],
    ['ghcr.io/acme/runner:', 'not [REGISTRY/]PATH'],
    ['ghcr.io/acme/runner@sha256:abc', 'not [REGISTRY/]PATH'],
    [`a/${'b'.repeat(260)}`, 'longer than 255 characters'],
  ])('image %j is refused: %s', (image, why) => {
    const message = errorOf({ pools: [pool({ image })] });
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toContain(`pools[0].image: ${JSON.stringify(image)} is not a safe image reference (${why}`);
    expect(message).toMatch(/; write e\.g\. ghcr\.io\/OWNER\/IMAGE:TAG, qemu:NAME or qemu:\/ABSOLUTE\/DIR$/);
  });

  it.each([
    [{ pools: [pool({ labels: ['self-hosted', 'a,b'] })] }, 'pools[0].labels[1]: "a,b" is not a label (a comma; give each one separately)'],
    [{ pools: [pool({ labels: ['x\u0007'] })] }, 'pools[0].labels[0]: "x\\u0007" is not a label (control characters; remove them)'],
    [{ pools: [pool({ labels: [' linux'] })] }, 'pools[0].labels[0]: " linux" is not a label (leading or trailing whitespace; remove it)'],
    [{ pools: [pool({ labels: ['l'.repeat(257)] })] }, `pools[0].labels[0]: "${'l'.repeat(257)}" is not a label (longer than 256 characters; shorten it)`],
    [{ hosts: [host({ labels: ['mac\nos'] })] }, 'hosts[0].labels[0]: "mac\\nos" is not a label (control characters; remove them)'],
    [{ pools: [pool({ runnerDir: '../../root' })] }, 'pools[0].runnerDir: "../../root" is not a directory without ".." segments; write e.g. actions-runner'],
    [{ pools: [pool({ runnerDir: 'runner\ndir' })] }, 'pools[0].runnerDir: "runner\\ndir" is not a directory (control characters; remove them)'],
    [{ temporal: { taskQueue: 'my queue' } }, 'temporal.taskQueue: "my queue" is not a task queue name (whitespace; remove it)'],
    [{ temporal: { namespace: 'a\tb' } }, 'temporal.namespace: "a\\tb" is not a namespace name (control characters; remove them)'],
    [{ pools: [pool({ hosts: ['../../x'] })] }, 'pools[0].hosts[0]: "../../x" is not a valid name; use 1-31 lower-case letters, digits and single dashes, starting with a letter or digit'],
    [{ hosts: [host({ id: 'BAD ID' })] }, 'hosts[0].id: "BAD ID" is not a valid name; use 1-31 lower-case letters, digits and single dashes, starting with a letter or digit'],
  ])('%j', (raw, message) => {
    expect(errorOf(raw)).toBe(message);
  });

  it.each(['repo:acme/..', 'repo:../x', 'org:..', 'enterprise:.', 'repo:a b/c', 'org:acme/x'])('github.scope %j is refused: a name that would change the API path', (scope) => {
    expect(errorOf({ github: { scope, auth: { tokenEnv: 'T' } } })).toBe(`github.scope: "${scope}" is not a scope; write repo:OWNER/REPO, org:ORG or enterprise:SLUG`);
  });

  it.each(['file:///etc/passwd', 'javascript:alert(1)', 'ftp://ghe.example.com'])('github.apiUrl %j is refused: only http(s)', (apiUrl) => {
    expect(errorOf({ github: { apiUrl, scope: 'org:acme', auth: { tokenEnv: 'T' } } })).toBe(
      `github.apiUrl: "${apiUrl}" is not an http(s) URL; use https://api.github.com or https://HOST/api/v3`,
    );
  });

  it('a namespace taken from TEMPORAL_NAMESPACE is checked too', () => {
    expect(() => parseFleetConfig({}, { TEMPORAL_NAMESPACE: 'a b' })).toThrow(/^TEMPORAL_NAMESPACE: "a b" is not a namespace name \(whitespace; remove it\)$/);
    expect(parseFleetConfig({ temporal: { namespace: 'ci' } }, { TEMPORAL_NAMESPACE: 'a b' }).temporal.namespace).toBe('ci');
  });

  it('absolute and home-relative runner directories are fine', () => {
    for (const runnerDir of ['actions-runner', '~/actions-runner', '/opt/actions-runner', 'a..b']) {
      expect(parseFleetConfig({ pools: [pool({ runnerDir })] }, {}).pools[0]!.runnerDir).toBe(runnerDir);
    }
  });
});
