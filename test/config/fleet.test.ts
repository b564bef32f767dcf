/**
 * The fleet config file: hosts and pools in one document, defaults, and validation errors
 * that name the field path and the fix.
 */
import { DEFAULT_BACKOFF, DEFAULT_RUNNER_TIMING } from '../../core/defaults.js';
import { describe, expect, it } from 'vitest';
import { ConfigError, editDistance, suggest } from '../../config/fields.js';
import {
  defaultCapacity,
  parseFleetConfig,
  resolveDriver,
  resolveGitHub,
  resolveWebhookSecret,
  type FleetConfig,
} from '../../config/fleet.js';
import { errorMessage } from '../../core/failures.js';

const fleet = {
  temporal: { address: 'temporal.example.com:7233', namespace: 'ci' },
  github: { apiUrl: 'https://api.github.com', scope: 'org:acme', auth: { tokenEnv: 'GITHUB_TOKEN' } },
  webhook: { port: 8088, secretEnv: 'EKIDEN_WEBHOOK_SECRET' },
  hosts: [
    { id: 'mac-mini-1', dataDir: '/var/lib/ekiden', labels: ['macos', 'arm64'], driver: { kind: 'tart', root: '/var/lib/ekiden/vms' } },
    { id: 'mac-mini-2', dataDir: '/var/lib/ekiden', capacity: 1, driver: { kind: 'tart', root: '/var/lib/ekiden/vms', passwordEnv: 'TART_PW' } },
    { id: 'linux-1', dataDir: '/srv/ekiden', driver: { kind: 'qemu', root: '/srv/ekiden/vms', imagesDir: '/srv/images' } },
  ],
  pools: [
    {
      name: 'ios',
      hosts: ['mac-mini-1', 'mac-mini-2'],
      image: 'ghcr.io/cirruslabs/macos-sequoia-xcode:latest',
      labels: ['self-hosted', 'macos', 'xcode'],
      size: 2,
      minIdle: 1,
      max: 4,
      cpu: 4,
      memoryMb: 8192,
      timing: { idleTimeoutMs: 3_600_000 },
    },
    { name: 'linux', hosts: ['linux-1'], image: 'ekiden/debian:12', labels: ['self-hosted', 'linux'] },
  ],
};

type Json = Record<string, unknown>;

/** A deep copy of the valid fleet with `edit` applied. */
function edited(edit: (f: Json & { hosts: Json[]; pools: Json[] }) => void): unknown {
  const copy = structuredClone(fleet) as unknown as Json & { hosts: Json[]; pools: Json[] };
  edit(copy);
  return copy;
}

function errorOf(raw: unknown, env: Record<string, string | undefined> = {}): string {
  try {
    parseFleetConfig(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return errorMessage(err);
  }
  throw new Error('expected a ConfigError');
}

describe('fleet config', () => {
  it('parses hosts and pools, filling in defaults', () => {
    const c: FleetConfig = parseFleetConfig(fleet, {});
    expect(c.temporal).toEqual({ address: 'temporal.example.com:7233', namespace: 'ci', taskQueue: 'ekiden' });
    expect(c.github).toEqual({ apiUrl: 'https://api.github.com', scope: { kind: 'org', org: 'acme' }, auth: { kind: 'token', tokenEnv: 'GITHUB_TOKEN' } });
    expect(c.webhook).toEqual({ port: 8088, secretEnv: 'EKIDEN_WEBHOOK_SECRET' });
    expect(parseFleetConfig({ webhook: { host: '0.0.0.0', maxBodyBytes: 1_000_000 } }, {}).webhook).toEqual({
      port: 8088,
      secretEnv: 'EKIDEN_WEBHOOK_SECRET',
      host: '0.0.0.0',
      maxBodyBytes: 1_000_000,
    });
    expect(c.hosts.map((h) => [h.id, h.capacity, h.labels])).toEqual([
      ['mac-mini-1', 2, ['macos', 'arm64']],
      ['mac-mini-2', 1, []],
      ['linux-1', undefined, []],
    ]);
    expect(c.pools[0]).toEqual({
      name: 'ios',
      hosts: ['mac-mini-1', 'mac-mini-2'],
      image: 'ghcr.io/cirruslabs/macos-sequoia-xcode:latest',
      labels: ['self-hosted', 'macos', 'xcode'],
      runnerGroupId: 1,
      runnerDir: 'actions-runner',
      credential: 'jit',
      size: 2,
      minIdle: 1,
      max: 4,
      cpu: 4,
      memoryMb: 8192,
      // Defaults are filled in here, at the edge: the workflow gets every value.
      timing: { ...DEFAULT_RUNNER_TIMING, idleTimeoutMs: 3_600_000 },
      backoff: DEFAULT_BACKOFF,
    });
    expect(c.pools[1]).toMatchObject({ name: 'linux', size: 1, minIdle: 0, max: 1, credential: 'jit', runnerGroupId: 1 });
  });

  it('takes the Temporal connection from the environment when the file has none', () => {
    const c = parseFleetConfig({}, { TEMPORAL_ADDRESS: 'tmp:7233', TEMPORAL_NAMESPACE: 'ns' });
    expect(c).toEqual({ temporal: { address: 'tmp:7233', namespace: 'ns', taskQueue: 'ekiden' }, hosts: [], pools: [], images: [], control: { intervalMs: 600_000, versioning: { deployment: 'ekiden' } } });
    expect(parseFleetConfig({}, {}).temporal).toEqual({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'ekiden' });
  });

  it('reads no secret: the token variable may be unset for the CLI', () => {
    expect(() => parseFleetConfig(fleet, {})).not.toThrow();
  });

  it('max defaults to size, or to minIdle when that is larger', () => {
    const pool = (p: Json) => parseFleetConfig({ pools: [{ name: 'p', hosts: ['h'], image: 'i', labels: ['l'], ...p }] }, {}).pools[0]!;
    expect(pool({ size: 3 }).max).toBe(3);
    expect(pool({ size: 0, minIdle: 2 }).max).toBe(2);
    expect(pool({ size: 0, minIdle: 1, max: 5 })).toMatchObject({ size: 0, minIdle: 1, max: 5 });
  });

  it('does not check pool hosts against a file that defines no hosts', () => {
    const c = parseFleetConfig({ pools: [{ name: 'p', hosts: ['anywhere'], image: 'i', labels: ['l'] }] }, {});
    expect(c.pools[0]!.hosts).toEqual(['anywhere']);
  });

  it('a host\'s image cache: 200 GiB and 7 days unless its entry says otherwise; bad values name the field and the fix', () => {
    const host = (extra: Record<string, unknown>) =>
      parseFleetConfig({ host: { id: 'box', dataDir: '/d', ...extra }, driver: { kind: 'fake', root: '/r', images: {} } }, {}).hosts[0]!.imageCache;
    expect(host({})).toEqual({ budgetBytes: 200 * 1024 ** 3, retentionMs: 7 * 24 * 3_600_000 });
    expect(host({ imageCacheGiB: 50, imageRetention: '36h' })).toEqual({ budgetBytes: 50 * 1024 ** 3, retentionMs: 36 * 3_600_000 });
    expect(() => host({ imageCacheGiB: 0 })).toThrow(/^host\.imageCacheGiB: 0 is not a whole number from 1 to 1048576 \(GiB of images kept on the host\)/);
    expect(() => host({ imageRetention: 7 })).toThrow(/^host\.imageRetention: 7 is not a duration from 1m to 365d; write e\.g\. "7d"/);
    expect(() => host({ imageRetention: '30s' })).toThrow(/^host\.imageRetention: "30s" is not a duration from 1m to 365d/);
  });

  it('the control plane: hosts of a fleet file run only their own VM work unless control: true; a single-host file is its own control plane; the fleet round every 10m unless control.interval says otherwise', () => {
    const c = parseFleetConfig(edited((f) => (f.hosts[2]!.control = true)), {});
    expect(c.hosts.map((h) => [h.id, h.control])).toEqual([['mac-mini-1', false], ['mac-mini-2', false], ['linux-1', true]]);
    expect(c.control).toEqual({ intervalMs: 600_000, versioning: { deployment: 'ekiden' } });
    const single = (extra: Record<string, unknown>) => parseFleetConfig({ host: { id: 'box', dataDir: '/d', ...extra }, driver: { kind: 'fake', root: '/r', images: {} } }, {}).hosts[0]!.control;
    expect(single({})).toBe(true);
    expect(single({ control: false })).toBe(false);
    expect(parseFleetConfig({ control: { interval: '90s' } }, {}).control).toEqual({ intervalMs: 90_000, versioning: { deployment: 'ekiden' } });
    expect(errorOf({ control: { interval: '5s' } })).toMatch(/^control\.interval: "5s" is not a duration from 10s to 1d; write e\.g\. "10m"/);
    expect(errorOf({ control: { interval: 600 } })).toMatch(/^control\.interval: 600 is not a duration from 10s to 1d/);
    expect(errorOf({ control: { intervl: '1m' } })).toMatch(/^control\.intervl: unknown field; did you mean interval\?$/);
    expect(errorOf({ control: true })).toMatch(/^control: expected an object, got true; write e\.g\. \{ interval: 10m \}$/);
    expect(errorOf(edited((f) => (f.hosts[0]!.control = 'yes')))).toMatch(/^hosts\[0\]\.control: "yes" is not/);
  });

  it('worker versioning: on in the fleet form (deployment = the task queue, build id = the package version unless set), off in the single-host form; names checked', () => {
    const control = (raw: Record<string, unknown>) => parseFleetConfig(raw, {}).control;
    expect(control({ temporal: { taskQueue: 'mac-fleet' } }).versioning).toEqual({ deployment: 'mac-fleet' });
    expect(control({ control: { deployment: 'ekiden-prod', buildId: '0.2.0-rc.1' } }).versioning).toEqual({ deployment: 'ekiden-prod', buildId: '0.2.0-rc.1' });
    expect(control({ control: { versioning: false } }).versioning).toBeUndefined();
    const single = { host: { id: 'box', dataDir: '/d' }, driver: { kind: 'fake', root: '/r', images: {} } };
    expect(control(single).versioning).toBeUndefined();
    expect(control({ ...single, control: { versioning: true } }).versioning).toEqual({ deployment: 'ekiden' });
    expect(errorOf({ control: { buildId: '0.2.0+sha.1' } })).toMatch(/^control\.buildId: "0\.2\.0\+sha\.1" is not a valid build id; use up to 100 letters, digits, '\.', '_' or '-'/);
    expect(errorOf({ control: { deployment: 'a:b' } })).toMatch(/^control\.deployment: "a:b" is not a valid deployment name/);
    expect(errorOf({ control: { versioning: false, buildId: '1' } })).toBe('control.buildId: set while control.versioning is false; drop it, or set versioning: true');
    expect(errorOf({ control: { versioning: 'yes' } })).toMatch(/^control\.versioning: "yes" is not/);
    expect(errorOf({ temporal: { taskQueue: 'q:1' } })).toMatch(/^control\.deployment: the task queue name "q:1" is not a valid deployment name; set control\.deployment/);
    expect(errorOf({ testing: { workflowBundle: 3 } })).toMatch(/^testing\.workflowBundle: /);
  });

  it('accepts the single-host form of a worker config', () => {
    const c = parseFleetConfig(
      {
        host: { id: 'box', dataDir: '/d', capacity: 3, labels: ['linux'] },
        driver: { kind: 'fake', root: '/r', images: {} },
        pools: [{ name: 'p', hosts: ['box'], image: 'i', labels: ['l'] }],
      },
      {},
    );
    expect(c.hosts).toEqual([{ id: 'box', dataDir: '/d', capacity: 3, labels: ['linux'], driver: { kind: 'fake', root: '/r', images: {} }, imageCache: { budgetBytes: 200 * 1024 ** 3, retentionMs: 7 * 24 * 3_600_000 }, control: true }]);
    expect(c.pools).toHaveLength(1);
  });

  it.each([
    ['unknown top-level key', edited((f) => (f.pool = [])), /^pool: unknown field; did you mean pools\?$/],
    ['unknown pool key with a hint', edited((f) => (f.pools[0]!.sise = 2)), /^pools\[0\]\.sise: unknown field; did you mean size\?$/],
    ['unknown key without a close match', edited((f) => (f.pools[1]!.colour = 'red')), /^pools\[1\]\.colour: unknown field; remove it \(known fields of pools\[1\]: name, hosts/],
    ['unknown host key', edited((f) => (f.hosts[0]!.capcity = 2)), /^hosts\[0\]\.capcity: unknown field; did you mean capacity\?$/],
    ['unknown driver key', edited((f) => ((f.hosts[2]!.driver as Json).imageDir = '/x')), /^hosts\[2\]\.driver\.imageDir: unknown field; did you mean imagesDir\?$/],
    ['unknown timing key', edited((f) => (f.pools[0]!.timing = { idleTimeout: 5 })), /^pools\[0\]\.timing\.idleTimeout: unknown field; did you mean idleTimeoutMs\?$/],
    ['unknown temporal key', edited((f) => (f.temporal = { adress: 'x' })), /^temporal\.adress: unknown field; did you mean address\?$/],
    ['unknown github key', edited((f) => ((f.github as Json).scoep = 'org:x')), /^github\.scoep: unknown field; did you mean scope\?$/],
    ['unknown webhook key', edited((f) => ((f.webhook as Json).secret = 'shh')), /^webhook\.secret: unknown field; did you mean secretEnv\?$/],
    ['max below size', edited((f) => Object.assign(f.pools[1]!, { size: 3, max: 2 })), /^pools\[1\]\.max: 2 is less than size \(3\); raise max or lower size$/],
    ['max below minIdle', edited((f) => (f.pools[0]!.minIdle = 5)), /^pools\[0\]\.max: 4 is less than minIdle \(5\); raise max or lower minIdle$/],
    ['max zero', edited((f) => (f.pools[1]!.max = 0)), /^pools\[1\]\.max: 0 is not a whole number from 1 to 1000 \(runners\); write e\.g\. 4$/],
    ['size and max both zero', edited((f) => (f.pools[1]!.size = 0)), /^pools\[1\]\.max: the pool could never run a runner.*set max \(or size\) to at least 1$/],
    ['negative size', edited((f) => (f.pools[0]!.size = -1)), /^pools\[0\]\.size: -1 is not a whole number from 0 to 1000 \(runners\); write e\.g\. 2$/],
    ['fractional size', edited((f) => (f.pools[0]!.size = 1.5)), /^pools\[0\]\.size: 1\.5 is not a whole number from 0 to 1000/],
    ['size as a string', edited((f) => (f.pools[0]!.size = '2')), /^pools\[0\]\.size: "2" is not a whole number from 0 to 1000/],
    ['duplicate pool names', edited((f) => (f.pools[1]!.name = 'ios')), /^pools\[1\]\.name: "ios" is defined twice; give each pool its own name$/],
    ['duplicate host ids', edited((f) => (f.hosts[2]!.id = 'mac-mini-1')), /^hosts\[2\]\.id: "mac-mini-1" is defined twice; give each host its own id$/],
    ['pool on an undefined host', edited((f) => (f.pools[0]!.hosts = ['mac-mini-1', 'mac-mini-3'])), /^pools\[0\]\.hosts\[1\]: no host "mac-mini-3" in hosts; define it under hosts or remove it from the pool \(hosts: mac-mini-1, mac-mini-2, linux-1\)$/],
    ['pool name not a slug', edited((f) => (f.pools[0]!.name = 'iOS Pool')), /^pools\[0\]\.name: "iOS Pool" is not a valid name; use 1-31 lower-case/],
    ['host id not a slug', edited((f) => (f.hosts[0]!.id = 'mac_mini')), /^hosts\[0\]\.id: "mac_mini" is not a valid name/],
    ['pool host id not a slug (no hosts section)', { pools: [{ name: 'p', hosts: ['Big Box'], image: 'i', labels: ['l'] }] }, /^pools\[0\]\.hosts\[0\]: "Big Box" is not a valid name/],
    ['pool without hosts', edited((f) => delete f.pools[0]!.hosts), /^pools\[0\]\.hosts: missing; write a list like \[mac-mini-1, mac-mini-2\]$/],
    ['pool with empty hosts', edited((f) => (f.pools[0]!.hosts = [])), /^pools\[0\]\.hosts: empty; give at least one/],
    ['pool hosts not a list', edited((f) => (f.pools[0]!.hosts = 'mac-mini-1')), /^pools\[0\]\.hosts: "mac-mini-1" is not a list/],
    ['pool host listed twice', edited((f) => (f.pools[0]!.hosts = ['mac-mini-1', 'mac-mini-1'])), /^pools\[0\]\.hosts\[1\]: "mac-mini-1" is listed twice; remove the duplicate$/],
    ['pool without labels', edited((f) => delete f.pools[0]!.labels), /^pools\[0\]\.labels: missing/],
    ['pool label empty', edited((f) => (f.pools[0]!.labels = ['self-hosted', ''])), /^pools\[0\]\.labels\[1\]: "" is not a non-empty string$/],
    ['pool without image', edited((f) => delete f.pools[0]!.image), /^pools\[0\]\.image: missing or not a string; name the VM image/],
    ['bad credential', edited((f) => (f.pools[0]!.credential = 'pat')), /^pools\[0\]\.credential: "pat" is not one of jit, registration-token$/],
    ['bad image digest', edited((f) => (f.pools[0]!.imageDigest = 'latest')), /^pools\[0\]\.imageDigest: "latest" is not a digest; write sha256: and 64 hex digits$/],
    ['bad timing value', edited((f) => (f.pools[0]!.timing = { idleTimeoutMs: -5 })), /^pools\[0\]\.timing\.idleTimeoutMs: -5 is not a whole number from 1 to 2592000000 \(ms, at most 30 days\); write e\.g\. 3600000$/],
    ['backoff upside down', edited((f) => (f.pools[0]!.backoff = { initialMs: 10, maxMs: 5 })), /^pools\[0\]\.backoff\.maxMs: 5 is less than initialMs \(10\); raise maxMs$/],
    ['pools not a list', edited((f) => (f.pools = { ios: {} } as unknown as Json[])), /^pools: an object is not a list/],
    ['pool not an object', edited((f) => (f.pools[1] = 'linux' as unknown as Json)), /^pools\[1\]: expected an object, got "linux"/],
    ['host without dataDir', edited((f) => delete f.hosts[1]!.dataDir), /^hosts\[1\]\.dataDir: missing or not a string; set a directory for host state/],
    ['host without driver', edited((f) => delete f.hosts[1]!.driver), /^hosts\[1\]\.driver: expected an object, got undefined/],
    ['host driver kind', edited((f) => ((f.hosts[0]!.driver as Json).kind = 'vmware')), /^hosts\[0\]\.driver\.kind: "vmware" is not supported; use "qemu", "tart" or "fake"$/],
    ['host capacity zero', edited((f) => (f.hosts[0]!.capacity = 0)), /^hosts\[0\]\.capacity: 0 is not a whole number from 1 to 256 \(VMs at once\); write e\.g\. 2$/],
    ['host labels not a list', edited((f) => (f.hosts[0]!.labels = 'macos')), /^hosts\[0\]\.labels: "macos" is not a list/],
    ['webhook port', edited((f) => ((f.webhook as Json).port = 70000)), /^webhook\.port: 70000 is not a whole number from 1 to 65535 \(a TCP port\); write e\.g\. 8088$/],
    ['webhook secret in the file', edited((f) => ((f.webhook as Json).secretEnv = 'hunter2 is my secret')), /^webhook\.secretEnv: "hunter2 is my secret" is not an environment variable name/],
    ['github scope', edited((f) => ((f.github as Json).scope = 'acme')), /^github\.scope: "acme" is not a scope; write repo:OWNER\/REPO/],
    ['host and hosts', edited((f) => (f.host = { id: 'x', dataDir: '/x' })), /^host: the file has both host and hosts; keep hosts/],
    ['driver at the top with hosts', edited((f) => (f.driver = { kind: 'fake', root: '/r', images: {} })), /^driver: with hosts, put driver under each host/],
    ['host without driver (single-host form)', { host: { id: 'x', dataDir: '/x' } }, /^driver: missing; the single-host form needs driver next to host/],
    ['not an object', ['hosts'], /^config: expected an object, got a list/],
  ])('%s', (_name, raw, message) => {
    expect(errorOf(raw)).toMatch(message);
  });

  it('every error is one line', () => {
    const broken = [edited((f) => (f.pools[0]!.sise = 2)), edited((f) => (f.pools[0]!.hosts = ['nope'])), edited((f) => (f.pools[0]!.max = 'lots'))];
    for (const raw of broken) expect(errorOf(raw).split('\n')).toHaveLength(1);
  });
});

describe('secrets, resolved by the process that needs them', () => {
  const parsed = parseFleetConfig(fleet, {});

  it('GitHub token from the named variable', () => {
    expect(resolveGitHub(parsed.github!, { GITHUB_TOKEN: 'ghp_x' }).auth).toEqual({ kind: 'token', token: 'ghp_x' });
    expect(() => resolveGitHub(parsed.github!, {})).toThrow(/^github\.auth\.tokenEnv: environment variable GITHUB_TOKEN is empty; export the token there$/);
  });

  it('tart password from the named variable, with the host path in the error', () => {
    expect(resolveDriver(parsed.hosts[1]!.driver, { TART_PW: 'admin' }, 'hosts[1].driver')).toMatchObject({ kind: 'tart', password: 'admin' });
    expect(() => resolveDriver(parsed.hosts[1]!.driver, {}, 'hosts[1].driver')).toThrow(/^hosts\[1\]\.driver\.passwordEnv: environment variable TART_PW is empty/);
    expect(resolveDriver(parsed.hosts[1]!.driver, { TART_PW: 'admin' })).not.toHaveProperty('passwordEnv');
  });

  it('webhook secret from the named variable', () => {
    expect(resolveWebhookSecret(parsed.webhook!, { EKIDEN_WEBHOOK_SECRET: 's3' })).toBe('s3');
    expect(() => resolveWebhookSecret(parsed.webhook!, {})).toThrow(/^webhook\.secretEnv: environment variable EKIDEN_WEBHOOK_SECRET is empty/);
  });
});

describe('helpers', () => {
  it('default capacity per driver', () => {
    expect(defaultCapacity('tart', 16)).toBe(2);
    expect(defaultCapacity('fake', 16)).toBe(4);
    expect(defaultCapacity('qemu', 16)).toBe(8);
    expect(defaultCapacity('qemu', 1)).toBe(1);
    expect(defaultCapacity('qemu', 3)).toBe(1);
  });

  it('edit distance and suggestions', () => {
    expect(editDistance('sise', 'size')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(suggest('minIdel', ['size', 'minIdle', 'max'])).toBe('minIdle');
    expect(suggest('colour', ['size', 'minIdle', 'max'])).toBeUndefined();
  });
});
