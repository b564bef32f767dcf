import { describe, expect, it } from 'vitest';
import { ConfigError, parseScope, parseWorkerConfig } from '../../config/schema.js';

const valid = {
  temporal: { address: '127.0.0.1:7233' },
  host: { id: 'mac-mini-1', dataDir: '/var/lib/ekiden' },
  driver: { kind: 'fake', root: '/var/lib/ekiden/vms', images: { 'ekiden/runner:1': '/images/runner' } },
  github: { scope: 'org:acme', auth: { tokenEnv: 'GH_TOKEN' } },
};
const env = { GH_TOKEN: 'ghp_secret' };

function without(path: string[]): unknown {
  const copy = structuredClone(valid) as Record<string, Record<string, unknown>>;
  delete copy[path[0]!]![path[1]!];
  return copy;
}

describe('worker config', () => {
  it('parses a valid config and reads the token from the named env var', () => {
    const c = parseWorkerConfig(valid, env);
    expect(c.github.auth).toEqual({ kind: 'token', token: 'ghp_secret' });
    expect(c.github.scope).toEqual({ kind: 'org', org: 'acme' });
    expect(c.temporal.taskQueue).toBe('ekiden');
  });

  it('fills in capacity per driver and labels for the host announcement', () => {
    expect(parseWorkerConfig(valid, env).host).toMatchObject({ id: 'mac-mini-1', dataDir: '/var/lib/ekiden', capacity: 4, labels: [], imageCache: { budgetBytes: 200 * 1024 ** 3, retentionMs: 7 * 24 * 3_600_000 }, control: true });
    const tart = { ...valid, host: { ...valid.host, labels: ['macos', 'arm64'] }, driver: { kind: 'tart', root: '/vms' } };
    expect(parseWorkerConfig(tart, env).host).toMatchObject({ capacity: 2, labels: ['macos', 'arm64'] });
    const qemu = { ...valid, driver: { kind: 'qemu', root: '/vms', imagesDir: '/images' } };
    expect(parseWorkerConfig(qemu, env).host.capacity).toBeUndefined();
    expect(parseWorkerConfig({ ...qemu, host: { ...valid.host, capacity: 3 } }, env).host.capacity).toBe(3);
  });

  it('accepts --host naming its own host, refuses another', () => {
    expect(parseWorkerConfig(valid, env, { hostId: 'mac-mini-1' }).host.id).toBe('mac-mini-1');
    expect(() => parseWorkerConfig(valid, env, { hostId: 'mac-mini-2' })).toThrow(/^--host: "mac-mini-2" is not this file's host \("mac-mini-1"\)/);
  });

  it.each([
    ['host.id', without(['host', 'id']), env, /^host\.id: .*give the host a short name/],
    ['host.dataDir', without(['host', 'dataDir']), env, /^host\.dataDir: /],
    ['host.id slug', { ...valid, host: { id: 'Mac Mini', dataDir: '/x' } }, env, /^host\.id: "Mac Mini" is not a valid name/],
    ['driver.kind', { ...valid, driver: { ...valid.driver, kind: 'vmware' } }, env, /^driver\.kind: "vmware" is not supported/],
    ['driver.accel', { ...valid, driver: { kind: 'qemu', root: '/x', imagesDir: '/y', accel: 'hvf' } }, env, /^driver\.accel: "hvf" is not one of auto, kvm, tcg$/],
    ['driver.imagesDir', { ...valid, driver: { kind: 'qemu', root: '/x' } }, env, /^driver\.imagesDir: /],
    ['github.scope', { ...valid, github: { ...valid.github, scope: 'acme' } }, env, /^github\.scope: "acme" is not a scope; write repo:OWNER\/REPO/],
    ['github.apiUrl', { ...valid, github: { ...valid.github, apiUrl: 'not a url' } }, env, /^github\.apiUrl: /],
    ['token env empty', valid, {}, /^github\.auth\.tokenEnv: environment variable GH_TOKEN is empty/],
    ['auth missing', { ...valid, github: { scope: 'org:acme', auth: {} } }, env, /^github\.auth: set tokenEnv/],
    ['app key file', { ...valid, github: { scope: 'org:acme', auth: { appId: 1, installationId: 2, privateKeyFile: '/nonexistent.pem' } } }, env, /^github\.auth\.privateKeyFile: \/nonexistent\.pem: cannot read the GitHub App private key \(no such file\)/],
    ['testing hook', { ...valid, testing: { pauseAfter: [1] } }, env, /^testing\.pauseAfter: /],
    ['unknown host key', { ...valid, host: { ...valid.host, dataDri: '/x' } }, env, /^host\.dataDri: unknown field; did you mean dataDir\?$/],
    ['driver inside host', { ...valid, host: { ...valid.host, driver: valid.driver } }, env, /^host\.driver: unknown field/],
    ['host capacity', { ...valid, host: { ...valid.host, capacity: 'two' } }, env, /^host\.capacity: "two" is not a whole number from 1 to 256 \(VMs at once\); write e\.g\. 2$/],
    ['tart password env', { ...valid, driver: { kind: 'tart', root: '/x', passwordEnv: 'TART_PASSWORD' } }, env, /^driver\.passwordEnv: environment variable TART_PASSWORD is empty/],
    ['unknown top-level key', { ...valid, githbu: {} }, env, /^githbu: unknown field; did you mean github\?$/],
  ])('names the field and the fix: %s', (_name, raw, e, message) => {
    expect(() => parseWorkerConfig(raw, e)).toThrow(ConfigError);
    expect(() => parseWorkerConfig(raw, e)).toThrow(message);
  });

  it.each([
    ['repo:acme/app', { kind: 'repo', owner: 'acme', repo: 'app' }],
    ['org:acme', { kind: 'org', org: 'acme' }],
    ['enterprise:big-co', { kind: 'enterprise', enterprise: 'big-co' }],
  ])('parseScope(%s)', (value, scope) => {
    expect(parseScope(value, 'f')).toEqual(scope);
  });

  it.each(['repo:acme', 'repo:a/b/c', 'team:x', ''])('parseScope rejects %j', (value) => {
    expect(() => parseScope(value, 'f')).toThrow(ConfigError);
  });
});
