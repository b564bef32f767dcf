/**
 * Config files on disk: YAML or JSON by extension, syntax errors with their line, and the
 * worker's choice of host in a fleet file.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/fields.js';
import { parseFleetConfig } from '../../config/fleet.js';
import { loadConfigFile, MAX_CONFIG_BYTES, parseConfigText } from '../../config/load.js';
import { parseWorkerConfig } from '../../config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'ekiden-config-'));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const FLEET_YAML = `# the whole fleet
temporal: { address: "127.0.0.1:7233", namespace: default }
github: { apiUrl: https://api.github.com, scope: "org:acme", auth: { tokenEnv: GITHUB_TOKEN } }
webhook: { port: 8088, secretEnv: EKIDEN_WEBHOOK_SECRET }
hosts:
  - id: mac-mini-1
    dataDir: /var/lib/ekiden
    capacity: 2
    labels: [macos, arm64]
    driver: { kind: tart, root: /var/lib/ekiden/vms }
  - id: mac-mini-2
    dataDir: /var/lib/ekiden
    driver: { kind: tart, root: /var/lib/ekiden/vms }
pools:
  - name: ios
    hosts: [mac-mini-1, mac-mini-2]
    image: ghcr.io/cirruslabs/macos-sequoia-xcode:latest
    labels: [self-hosted, macos, xcode]
    size: 2
    minIdle: 1
    max: 4
    runnerGroupId: 1
    runnerDir: actions-runner
    credential: jit
    cpu: 4
    memoryMb: 8192
    timing: { idleTimeoutMs: 3600000 }
`;

describe('loadConfigFile', () => {
  it('reads the README example as YAML (.yaml and .yml)', () => {
    for (const name of ['fleet.yaml', 'fleet.yml']) {
      const c = parseFleetConfig(loadConfigFile(file(name, FLEET_YAML)), {});
      expect(c.hosts.map((h) => h.id)).toEqual(['mac-mini-1', 'mac-mini-2']);
      expect(c.pools[0]).toMatchObject({ name: 'ios', size: 2, minIdle: 1, max: 4, timing: { idleTimeoutMs: 3_600_000 } });
    }
  });

  it('reads JSON', () => {
    const path = file('fleet.json', JSON.stringify({ pools: [{ name: 'p', hosts: ['h'], image: 'i', labels: ['l'] }] }));
    expect(parseFleetConfig(loadConfigFile(path), {}).pools[0]!.name).toBe('p');
  });

  it('names the line of a YAML syntax error', () => {
    const path = file('broken.yaml', 'hosts:\n  - id: a\n    labels: [x, y\npools: []\n');
    expect(() => loadConfigFile(path)).toThrow(ConfigError);
    expect(() => loadConfigFile(path)).toThrow(/broken\.yaml: YAML error at line 4, column 1: .*; fix the syntax there$/);
  });

  it('duplicate YAML keys are an error with their line', () => {
    const path = file('dup.yaml', 'pools: []\nhosts: []\npools: []\n');
    expect(() => loadConfigFile(path)).toThrow(/dup\.yaml: YAML error at line 3, column 1: Map keys must be unique/);
  });

  it('names the line of a JSON syntax error', () => {
    const path = file('broken.json', '{\n  "pools": [],\n}\n');
    expect(() => loadConfigFile(path)).toThrow(/broken\.json: JSON error at line 3, column 1: .*; fix the syntax there$/);
  });

  it('refuses other extensions and missing files', () => {
    expect(() => loadConfigFile(file('fleet.toml', 'x = 1'))).toThrow(/fleet\.toml: unknown config format "\.toml"; name the file \*\.yaml, \*\.yml or \*\.json$/);
    expect(() => loadConfigFile(join(dir, 'missing.yaml'))).toThrow(/missing\.yaml: cannot read the config file \(no such file\)/);
  });

  it('never opens what is not a small regular file: a FIFO (would block), a device (never ends), a directory, a huge file', () => {
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    expect(() => loadConfigFile(fifo)).toThrow(/fifo\.yaml: cannot read the config file \(it is not a regular file but a FIFO\); give the path of a file$/);
    const zero = join(dir, 'zero.yaml');
    symlinkSync('/dev/zero', zero);
    expect(() => loadConfigFile(zero)).toThrow(/zero\.yaml: cannot read the config file \(it is not a regular file but a device\)/);
    expect(() => loadConfigFile('/dev/zero')).toThrow(/unknown config format "\(no extension\)"/); // the extension is checked first
    const folder = join(dir, 'folder.yaml');
    mkdirSync(folder);
    expect(() => loadConfigFile(folder)).toThrow(/folder\.yaml: cannot read the config file \(it is a directory\)/);
    const huge = file('huge.yaml', `# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
    expect(() => loadConfigFile(huge)).toThrow(/huge\.yaml: cannot read the config file \(it is \d+ bytes, more than the 1048576 a config file may have\)/);
  });

  it('an empty YAML file is an empty fleet', () => {
    expect(parseFleetConfig(loadConfigFile(file('empty.yaml', '# nothing yet\n')), {})).toMatchObject({ hosts: [], pools: [] });
  });
});

describe('worker config from a fleet file', () => {
  const env = { GITHUB_TOKEN: 'ghp_x' };
  const raw = () => loadConfigFile(file('fleet.yaml', FLEET_YAML));

  it('--host picks the entry, with capacity and labels', () => {
    const c = parseWorkerConfig(raw(), env, { hostId: 'mac-mini-1' });
    expect(c.host).toEqual({ id: 'mac-mini-1', dataDir: '/var/lib/ekiden', capacity: 2, labels: ['macos', 'arm64'], imageCache: { budgetBytes: 200 * 1024 ** 3, retentionMs: 7 * 24 * 3_600_000 }, control: false });
    expect(c.driver).toMatchObject({ kind: 'tart', root: '/var/lib/ekiden/vms' });
    expect(c.github.auth).toEqual({ kind: 'token', token: 'ghp_x' });
    expect(c.temporal).toEqual({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'ekiden' });
    expect(parseWorkerConfig(raw(), env, { hostId: 'mac-mini-2' }).host).toMatchObject({ id: 'mac-mini-2', capacity: 2, labels: [] });
  });

  it('--host is required when the file has several hosts, and must name one of them', () => {
    expect(() => parseWorkerConfig(raw(), env)).toThrow(/^hosts: the file defines 2 hosts \(mac-mini-1, mac-mini-2\); pick this machine's with --host ID$/);
    expect(() => parseWorkerConfig(raw(), env, { hostId: 'mac-mini-9' })).toThrow(/^--host: no host "mac-mini-9" in the file; hosts: mac-mini-1, mac-mini-2$/);
  });

  it('a fleet file with one host needs no --host', () => {
    const one = { ...(raw() as Record<string, unknown>), hosts: [(raw() as { hosts: unknown[] }).hosts[0]], pools: [] };
    expect(parseWorkerConfig(one, env).host.id).toBe('mac-mini-1');
  });

  it('a worker needs github and at least one host', () => {
    expect(() => parseWorkerConfig({ hosts: [{ id: 'a', dataDir: '/a', driver: { kind: 'fake', root: '/r', images: {} } }] }, env)).toThrow(/^github: missing/);
    expect(() => parseWorkerConfig({ github: { scope: 'org:acme', auth: { tokenEnv: 'GITHUB_TOKEN' } } }, env)).toThrow(/^hosts: the file defines no host/);
  });
});

describe('the README examples parse', () => {
  const readme = readFileSync(join(fileURLToPath(new URL('../..', import.meta.url)), 'README.md'), 'utf8');

  it('the fleet file of "Operating a fleet"', () => {
    const section = readme.slice(readme.indexOf('## Operating a fleet'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    const c = parseFleetConfig(parseConfigText(yaml, 'README.yaml'), {});
    expect(c.pools.map((p) => [p.name, p.size, p.minIdle, p.max])).toEqual([['ios', 2, 1, 4]]);
    expect(parseWorkerConfig(parseConfigText(yaml, 'README.yaml'), { GITHUB_TOKEN: 'x' }, { hostId: 'mac-mini-1' }).host.capacity).toBe(2);
  });

  it('the worker config of "Host worker configuration"', () => {
    const section = readme.slice(readme.indexOf('## Host worker configuration'));
    const json = /```json\n([\s\S]*?)```/.exec(section)![1]!;
    expect(parseWorkerConfig(parseConfigText(json, 'README.json'), { GITHUB_TOKEN: 'x' }).host.id).toBe('mac-mini-1');
  });
});
