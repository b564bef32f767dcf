/**
 * The image catalog of the fleet file (config/images.ts): the registry with its password only
 * by reference, image definitions with defaults, every rule's error naming the field path and
 * the fix, pools following a catalog entry, and secrets resolved at use time without ever
 * appearing in an error.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { durationValue, formatDuration, parseDuration, BOUNDS } from '../../config/bounds.js';
import { ConfigError } from '../../config/fields.js';
import { loadFleetConfigFile, parseFleetConfig, type FleetConfig } from '../../config/fleet.js';
import { cronProblem, resolveImageVariables, resolveRegistryPassword } from '../../config/images.js';
import { errorMessage } from '../../core/failures.js';

type Json = Record<string, unknown>;
type Doc = Json & { hosts: Json[]; pools: Json[]; images: Json[]; registry: Json };

const DIGEST = `sha256:${'a'.repeat(64)}`;

const doc: Doc = {
  registry: { url: 'https://registry.example.com:5000', username: 'ekiden', passwordEnv: 'EKIDEN_REGISTRY_PASSWORD' },
  hosts: [
    { id: 'linux-1', dataDir: '/srv/ekiden', driver: { kind: 'qemu', root: '/srv/vms', imagesDir: '/srv/images' } },
    { id: 'mac-1', dataDir: '/var/lib/ekiden', driver: { kind: 'tart', root: '/var/lib/ekiden/vms' } },
  ],
  images: [
    {
      name: 'linux-runner',
      kind: 'qemu',
      template: '/etc/ekiden/packer/linux',
      variables: { runner_version: '2.330.0', disk_gb: 20, headless: true, token: { env: 'BUILD_TOKEN' } },
      base: { ref: 'qemu:debian-bookworm-runner' },
      repository: 'ekiden/linux-runner',
      buildHosts: ['linux-1'],
      schedule: { cron: '0 3 * * 1-5', timezone: 'Europe/Berlin' },
    },
    {
      name: 'macos-runner',
      kind: 'tart',
      template: '/etc/ekiden/packer/macos.pkr.hcl',
      base: { ref: 'ghcr.io/cirruslabs/macos-sequoia-base:latest', digest: DIGEST },
      repository: 'ekiden/macos-runner',
      buildHosts: ['mac-1'],
      keep: 2,
      promote: 'manual',
      smokeTest: { timeout: '20m' },
      buildTimeout: '3h',
    },
  ],
  pools: [
    { name: 'linux', hosts: ['linux-1'], image: 'catalog:linux-runner', labels: ['self-hosted', 'linux'] },
    { name: 'ios', hosts: ['mac-1'], image: 'catalog:macos-runner', labels: ['self-hosted', 'macos'] },
  ],
};

function edited(edit: (d: Doc) => void): unknown {
  const copy = structuredClone(doc);
  edit(copy);
  return copy;
}

const image = (d: Doc, i: number) => d.images[i]!;

function errorOf(raw: unknown, configFile?: string): string {
  try {
    parseFleetConfig(raw, {}, { configFile });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return errorMessage(err);
  }
  throw new Error('expected a ConfigError');
}

describe('image catalog', () => {
  it('parses the registry and images, filling in defaults', () => {
    const c: FleetConfig = parseFleetConfig(doc, {});
    expect(c.registry).toEqual({ url: 'https://registry.example.com:5000', host: 'registry.example.com:5000', insecure: false, username: 'ekiden', passwordEnv: 'EKIDEN_REGISTRY_PASSWORD' });
    expect(c.images[0]).toEqual({
      name: 'linux-runner',
      kind: 'qemu',
      template: '/etc/ekiden/packer/linux',
      variables: { runner_version: '2.330.0', disk_gb: 20, headless: true, token: { env: 'BUILD_TOKEN' } },
      base: { ref: 'qemu:debian-bookworm-runner' },
      repository: 'ekiden/linux-runner',
      buildHosts: ['linux-1'],
      schedule: { cron: '0 3 * * 1-5', timezone: 'Europe/Berlin', catchupWindowMs: 3_600_000, paused: false },
      keep: 5,
      promote: 'auto',
      smokeTest: { timeoutMs: 600_000 },
      buildTimeoutMs: 7_200_000,
    });
    expect(c.images[1]).toMatchObject({ base: { ref: 'ghcr.io/cirruslabs/macos-sequoia-base:latest', digest: DIGEST }, keep: 2, promote: 'manual', smokeTest: { timeoutMs: 1_200_000 }, buildTimeoutMs: 10_800_000 });
    expect(c.images[1]).not.toHaveProperty('schedule');
    expect(c.pools.map((p) => p.image)).toEqual(['catalog:linux-runner', 'catalog:macos-runner']);
  });

  it('a file without images has an empty catalog and needs no registry', () => {
    expect(parseFleetConfig({}, {})).toMatchObject({ images: [] });
    expect(parseFleetConfig({}, {})).not.toHaveProperty('registry');
  });

  it('resolves relative paths against the config file, and the loaded file does the same', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekiden-images-'));
    const raw = edited((d) => {
      image(d, 0).template = 'packer/linux';
      d.registry.caFile = 'certs/ca.pem';
    });
    const c = parseFleetConfig(raw, {}, { configFile: join(dir, 'fleet.yaml') });
    expect(c.images[0]!.template).toBe(join(dir, 'packer/linux'));
    expect(c.registry!.caFile).toBe(join(dir, 'certs/ca.pem'));
    const file = join(dir, 'fleet.json');
    writeFileSync(file, JSON.stringify(raw));
    expect(loadFleetConfigFile(file, {}).images[0]!.template).toBe(join(dir, 'packer/linux'));
  });

  it('accepts plain http only with insecure, and the registry forms', () => {
    expect(parseFleetConfig(edited((d) => (d.registry = { url: 'http://10.0.0.5:5000', insecure: true })), {}).registry).toEqual({ url: 'http://10.0.0.5:5000', host: '10.0.0.5:5000', insecure: true });
    expect(parseFleetConfig(edited((d) => (d.registry = { url: 'https://r.example/', username: 'u', passwordFile: '/etc/ekiden/pw' })), {}).registry).toMatchObject({ url: 'https://r.example', passwordFile: '/etc/ekiden/pw' });
  });

  it.each([
    ['0 3 * * *'], ['*/15 * * * *'], ['0 0 1 jan,jul *'], ['30 2 * * MON-FRI'], ['0 0 * * 7'], ['5,35 1-23/2 1-31 1-12 0-6'], ['@daily'], ['  0  4 * * 0 '],
  ])('cron %j is accepted', (cron) => {
    expect(cronProblem('c', cron)).toBeUndefined();
  });

  it.each([
    ['0 3 * *', '4 fields, not 5'],
    ['0 3 * * * *', '6 fields, not 5'],
    ['60 3 * * *', 'minute: 60 is outside 0-59'],
    ['0 24 * * *', 'hour: 24 is outside 0-23'],
    ['0 3 0 * *', 'day-of-month: 0 is outside 1-31'],
    ['0 3 * 13 *', 'month: 13 is outside 1-12'],
    ['0 3 * * 8', 'day-of-week: 8 is outside 0-7'],
    ['0 3 * * mon-sun', 'day-of-week: the range mon-sun runs backwards'],
    ['0 3 * foo *', 'month: "foo" is not a number or a name'],
    ['*/0 * * * *', 'minute: step 0 is not from 1 to 59'],
    ['0 3 ? * *', 'day-of-month: "?" is not *, N, N-M'],
    ['0 3 L * *', 'day-of-month: "L" is not a number'],
    ['@often', '@often is not one of @yearly'],
  ])('cron %j is refused: %s', (cron, why) => {
    const message = errorOf(edited((d) => (image(d, 0).schedule = { cron })));
    expect(message).toContain(`images[0].schedule.cron: ${JSON.stringify(cron)} is not a cron schedule (${why}`);
    expect(message).toMatch(/; write five fields "minute hour day-of-month month day-of-week", e\.g\. "0 3 \* \* \*"/);
  });

  it('durations: text with units, within the table', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('2 h')).toBeUndefined();
    expect(parseDuration('')).toBeUndefined();
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(2 * 86_400_000)).toBe('2d');
    expect(durationValue('f', '2d', BOUNDS.buildTimeoutMs)).toEqual({ ms: 172_800_000 });
    expect(durationValue('f', '2d1ms', BOUNDS.buildTimeoutMs)).toHaveProperty('problem');
  });

  it.each([
    // registry
    ['registry missing with images', edited((d) => delete (d as Json).registry), /^registry: missing; images are pushed to a registry, add e\.g\. registry: \{ url: /],
    ['registry unknown field', edited((d) => (d.registry.usernam = 'x')), /^registry\.usernam: unknown field; did you mean username\?$/],
    ['registry url missing', edited((d) => delete d.registry.url), /^registry\.url: missing or not a string; write the registry address, e\.g\. "https:\/\/registry\.example\.com"$/],
    ['registry url with a path', edited((d) => (d.registry.url = 'https://r.example/v2/x')), /^registry\.url: "https:\/\/r\.example\/v2\/x" is not https:\/\/HOST\[:PORT\] \(no user, path or query\); write e\.g\. /],
    ['registry url with a user', edited((d) => (d.registry.url = 'https://me@r.example')), /^registry\.url: .* is not https:\/\/HOST\[:PORT\]/],
    ['registry url not http(s)', edited((d) => (d.registry.url = 'ftp://r.example')), /^registry\.url: "ftp:\/\/r\.example" is not https:\/\/HOST\[:PORT\]/],
    ['registry url port out of range', edited((d) => (d.registry.url = 'https://r.example:70000')), /^registry\.url: port 70000 is not 1-65535; write e\.g\./],
    ['registry plain http', edited((d) => (d.registry.url = 'http://r.example')), /^registry\.url: "http:\/\/r\.example" is plain http; use https, or set insecure: true/],
    ['registry passwordEnv not a name', edited((d) => (d.registry.passwordEnv = 'hunter2 pw')), /^registry\.passwordEnv: not an environment variable name .*; name the variable that holds the registry password, never the value$/],
    ['registry both password references', edited((d) => (d.registry.passwordFile = '/etc/pw')), /^registry\.passwordFile: set either passwordEnv or passwordFile, not both$/],
    ['registry relative passwordFile', edited((d) => Object.assign(d.registry, { passwordEnv: undefined, passwordFile: 'pw.txt' })), /^registry\.passwordFile: "pw\.txt" is not an absolute path; write e\.g\. \/etc\/ekiden\/registry-password$/],
    ['registry password without user', edited((d) => delete d.registry.username), /^registry\.username: missing; a password needs the user name it belongs to$/],
    ['registry user without password', edited((d) => delete d.registry.passwordEnv), /^registry\.username: set without a password; add passwordEnv or passwordFile/],
    ['registry insecure not a bool', edited((d) => (d.registry.insecure = 'yes')), /^registry\.insecure: "yes" is not true or false$/],
    ['registry relative caFile without a file', edited((d) => (d.registry.caFile = 'ca.pem')), /^registry\.caFile: "ca\.pem" is relative, but the config was not read from a file; write an absolute path$/],
    // images: the list and its entries
    ['images not a list', edited((d) => ((d as Json).images = { a: 1 })), /^images: an object is not a list; write a list of entries/],
    ['image not an object', edited((d) => (d.images[0] = 'linux' as unknown as Json)), /^images\[0\]: expected an object, got "linux"; write e\.g\. \{ name: linux-runner/],
    ['image unknown field', edited((d) => (image(d, 1).keeep = 3)), /^images\[1\]\.keeep: unknown field; did you mean keep\?$/],
    ['image name missing', edited((d) => delete image(d, 0).name), /^images\[0\]\.name: missing or not a string; give the image a short name like "linux-runner"$/],
    ['image name not a slug', edited((d) => (image(d, 0).name = 'Linux Runner')), /^images\[0\]\.name: "Linux Runner" is not a valid name; use 1-31 lower-case/],
    ['image name twice', edited((d) => (image(d, 1).name = 'linux-runner')), /^images\[1\]\.name: "linux-runner" is defined twice; give each image its own name$/],
    ['image kind missing', edited((d) => delete image(d, 0).kind), /^images\[0\]\.kind: missing; use "qemu" or "tart"$/],
    ['image kind unknown', edited((d) => (image(d, 0).kind = 'docker')), /^images\[0\]\.kind: "docker" is not supported; use "qemu" or "tart"$/],
    ['template missing', edited((d) => delete image(d, 0).template), /^images\[0\]\.template: missing; write the path of the Packer template \(file or directory\), e\.g\. /],
    ['template relative without a file', edited((d) => (image(d, 0).template = 'packer/linux')), /^images\[0\]\.template: "packer\/linux" is relative, but the config was not read from a file; write an absolute path$/],
    ['template with a control character', edited((d) => (image(d, 0).template = '/p\n')), /^images\[0\]\.template: "\/p\\n" is not a path \(control characters; remove them\)$/],
    ['variable name', edited((d) => (image(d, 0).variables = { 'bad name': 'x' })), /^images\[0\]\.variables\.bad name: not a Packer variable name; use letters, digits, _ and -/],
    ['variable list holding a number', edited((d) => (image(d, 0).variables = { inline: ['a', 3] })), /^images\[0\]\.variables\.inline\.1: 3 is not a string; a list variable holds strings, e\.g\. \["apt-get install -y jq"\]$/],
    ['variable value null', edited((d) => (image(d, 0).variables = { x: null })), /^images\[0\]\.variables\.x: null is not a string, number/],
    ['variable env not a name', edited((d) => (image(d, 0).variables = { t: { env: 'my token' } })), /^images\[0\]\.variables\.t\.env: not an environment variable name .*; name the variable that holds the value, never the value$/],
    ['variable env unknown key', edited((d) => (image(d, 0).variables = { t: { value: 'x' } })), /^images\[0\]\.variables\.t\.value: unknown field; remove it \(known fields of images\[0\]\.variables\.t: env\)$/],
    ['base missing', edited((d) => delete image(d, 0).base), /^images\[0\]\.base: expected an object, got undefined; write e\.g\. \{ ref: qemu:debian-bookworm-runner \}, or \{ digest: sha256:… \}$/],
    ['base empty', edited((d) => (image(d, 0).base = {})), /^images\[0\]\.base: give ref or digest \(or both\); write e\.g\. \{ ref: qemu:debian-bookworm-runner \}$/],
    ['base unknown field', edited((d) => (image(d, 0).base = { image: 'x' })), /^images\[0\]\.base\.image: unknown field; remove it \(known fields of images\[0\]\.base: ref, digest\)$/],
    ['qemu base not a qemu ref', edited((d) => (image(d, 0).base = { ref: 'ghcr.io/a/b:1' })), /^images\[0\]\.base\.ref: "ghcr\.io\/a\/b:1" is not a QEMU image; a qemu image starts from qemu:NAME or qemu:\/ABSOLUTE\/DIR$/],
    ['tart base a qemu ref', edited((d) => (image(d, 1).base = { ref: 'qemu:x' })), /^images\[1\]\.base\.ref: "qemu:x" is a QEMU image; a tart image starts from an OCI reference, e\.g\. /],
    ['base ref unsafe', edited((d) => (image(d, 0).base = { ref: 'qemu:../etc' })), /^images\[0\]\.base\.ref: "qemu:\.\.\/etc" is not a safe image reference \(a "\.\." path segment\); write e\.g\./],
    ['base digest', edited((d) => (image(d, 0).base = { digest: 'sha256:abc' })), /^images\[0\]\.base\.digest: "sha256:abc" is not a digest; write sha256: and 64 hex digits$/],
    ['repository missing', edited((d) => delete image(d, 0).repository), /^images\[0\]\.repository: missing or not a string; write the registry repository, e\.g\. "ekiden\/linux-runner"$/],
    ['repository upper case', edited((d) => (image(d, 0).repository = 'Ekiden/Runner')), /^images\[0\]\.repository: "Ekiden\/Runner" is not a repository name \(lower-case letters and digits joined by/],
    ['repository with a tag', edited((d) => (image(d, 0).repository = 'ekiden/runner:1')), /^images\[0\]\.repository: "ekiden\/runner:1" is not a repository name .*; write e\.g\. "ekiden\/linux-runner"$/],
    ['repository empty segment', edited((d) => (image(d, 0).repository = 'ekiden//runner')), /^images\[0\]\.repository: "ekiden\/\/runner" is not a repository name/],
    ['repository too long', edited((d) => (image(d, 0).repository = `a/${'b'.repeat(200)}`)), /^images\[0\]\.repository: "a\/b+" is not a repository name \(longer than 200 characters\)/],
    ['buildHosts missing', edited((d) => delete image(d, 0).buildHosts), /^images\[0\]\.buildHosts: missing; write a list like \[linux-1\]$/],
    ['buildHosts empty', edited((d) => (image(d, 0).buildHosts = [])), /^images\[0\]\.buildHosts: empty; give at least one, like \[linux-1\]$/],
    ['buildHosts unknown host', edited((d) => (image(d, 0).buildHosts = ['linux-9'])), /^images\[0\]\.buildHosts\[0\]: no host "linux-9" in hosts; define it under hosts or remove it from buildHosts \(hosts: linux-1, mac-1\)$/],
    ['buildHosts of the wrong driver', edited((d) => (image(d, 0).buildHosts = ['mac-1'])), /^images\[0\]\.buildHosts\[0\]: host "mac-1" runs tart, but the image is qemu; build it on a qemu host$/],
    ['keep zero', edited((d) => (image(d, 0).keep = 0)), /^images\[0\]\.keep: 0 is not a whole number from 1 to 100 \(old builds kept\); write e\.g\. 5$/],
    ['keep too many', edited((d) => (image(d, 0).keep = 101)), /^images\[0\]\.keep: 101 is not a whole number from 1 to 100/],
    ['promote', edited((d) => (image(d, 0).promote = 'always')), /^images\[0\]\.promote: "always" is not one of auto, manual$/],
    ['smokeTest unknown field', edited((d) => (image(d, 0).smokeTest = { timout: '1m' })), /^images\[0\]\.smokeTest\.timout: unknown field; did you mean timeout\?$/],
    ['smokeTest timeout a number', edited((d) => (image(d, 0).smokeTest = { timeout: 600 })), /^images\[0\]\.smokeTest\.timeout: 600 is not a duration from 1s to 1d; write e\.g\. "10m" \(whole numbers with units ms, s, m, h, d, like "90s" or "1h30m"\)$/],
    ['smokeTest timeout too long', edited((d) => (image(d, 0).smokeTest = { timeout: '2d' })), /^images\[0\]\.smokeTest\.timeout: "2d" is not a duration from 1s to 1d; write e\.g\. "10m"/],
    ['buildTimeout too short', edited((d) => (image(d, 0).buildTimeout = '30s')), /^images\[0\]\.buildTimeout: "30s" is not a duration from 1m to 2d; write e\.g\. "2h"/],
    ['buildTimeout with spaces', edited((d) => (image(d, 0).buildTimeout = '2 hours')), /^images\[0\]\.buildTimeout: "2 hours" is not a duration from 1m to 2d/],
    ['schedule not an object', edited((d) => (image(d, 0).schedule = '0 3 * * *')), /^images\[0\]\.schedule: expected an object, got "0 3 \* \* \*"/],
    ['schedule without cron', edited((d) => (image(d, 0).schedule = { paused: true })), /^images\[0\]\.schedule\.cron: missing or not a string; write five fields/],
    ['schedule unknown field', edited((d) => (image(d, 0).schedule = { cron: '@daily', timeZone: 'UTC' })), /^images\[0\]\.schedule\.timeZone: unknown field; did you mean timezone\?$/],
    ['schedule timezone', edited((d) => (image(d, 0).schedule = { cron: '@daily', timezone: 'Berlin time' })), /^images\[0\]\.schedule\.timezone: "Berlin time" is not an IANA time zone name; write e\.g\. "Europe\/Berlin"/],
    ['schedule catchupWindow', edited((d) => (image(d, 0).schedule = { cron: '@daily', catchupWindow: '31d' })), /^images\[0\]\.schedule\.catchupWindow: "31d" is not a duration from 1m to 30d; write e\.g\. "1h"/],
    ['schedule paused', edited((d) => (image(d, 0).schedule = { cron: '@daily', paused: 'no' })), /^images\[0\]\.schedule\.paused: "no" is not true or false$/],
    // pools following the catalog
    ['pool catalog image unknown', edited((d) => (d.pools[0]!.image = 'catalog:linux')), /^pools\[0\]\.image: no image "linux" in images; define it under images or fix the name \(images: linux-runner, macos-runner\)$/],
    ['pool catalog image without images', { pools: [{ name: 'p', hosts: ['h'], image: 'catalog:x', labels: ['l'] }] }, /^pools\[0\]\.image: no image "x" in images; define it under images or fix the name \(the file defines no images\)$/],
    ['pool catalog image of the wrong kind', edited((d) => (d.pools[1]!.image = 'catalog:linux-runner')), /^pools\[1\]\.image: image "linux-runner" is qemu, but host "mac-1" runs tart; use a tart image for this pool or move it to qemu hosts$/],
  ])('%s', (_name, raw, message) => {
    const text = errorOf(raw);
    expect(text.split('\n')).toHaveLength(1);
    expect(text).toMatch(message);
  });

  it('a fake host builds and runs either kind; a pool without a hosts section is not kind-checked', () => {
    const fake = { id: 'fake-1', dataDir: '/d', driver: { kind: 'fake', root: '/r', images: {} } };
    const c = parseFleetConfig(edited((d) => {
      d.hosts.push(fake);
      image(d, 1).buildHosts = ['fake-1'];
      d.pools[0]!.hosts = ['fake-1'];
      d.pools[1]!.image = 'catalog:linux-runner';
      d.pools[1]!.hosts = ['fake-1'];
    }), {});
    expect(c.images[1]!.buildHosts).toEqual(['fake-1']);
    const noHosts = edited((d) => {
      d.hosts = [];
      d.pools[1]!.image = 'catalog:linux-runner';
    });
    expect(parseFleetConfig(noHosts, {}).pools[1]!.image).toBe('catalog:linux-runner');
  });

  it('the other image forms still work next to a catalog', () => {
    const c = parseFleetConfig(edited((d) => d.pools.push({ name: 'plain', hosts: ['linux-1'], image: 'qemu:debian-bookworm-runner', labels: ['l'] })), {});
    expect(c.pools[2]!.image).toBe('qemu:debian-bookworm-runner');
  });
});

const CATALOG_YAML = `registry:
  url: https://registry.example.com:5000
  username: ekiden
  passwordEnv: EKIDEN_REGISTRY_PASSWORD     # or passwordFile: /etc/ekiden/registry-password
  caFile: certs/registry-ca.pem             # relative: next to this file
hosts:
  - id: linux-1
    dataDir: /srv/ekiden
    driver: { kind: qemu, root: /srv/ekiden/vms, imagesDir: /srv/ekiden/images }
  - id: mac-mini-1
    dataDir: /var/lib/ekiden
    driver: { kind: tart, root: /var/lib/ekiden/vms }
images:
  - name: linux-runner
    kind: qemu
    template: packer/linux-runner           # file or directory; relative: next to this file
    variables:
      runner_version: "2.330.0"
      disk_gb: 40
      headless: true
      github_token: { env: PACKER_GITHUB_TOKEN }   # read on the build host at build time
    base: { ref: "qemu:debian-bookworm-runner" }
    repository: ekiden/linux-runner
    buildHosts: [linux-1]
    schedule: { cron: "0 3 * * 1-5", timezone: Europe/Berlin, catchupWindow: 2h, paused: false }
    keep: 5
    promote: auto
    smokeTest: { timeout: 10m }
    buildTimeout: 2h
  - name: macos-runner
    kind: tart
    template: /etc/ekiden/packer/macos.pkr.hcl
    base:
      ref: ghcr.io/cirruslabs/macos-sequoia-base:latest
      digest: "sha256:${'a'.repeat(64)}"
    repository: ekiden/macos-runner
    buildHosts: [mac-mini-1]
    promote: manual
pools:
  - name: linux
    hosts: [linux-1]
    image: catalog:linux-runner
    labels: [self-hosted, linux]
  - name: ios
    hosts: [mac-mini-1]
    image: catalog:macos-runner
    labels: [self-hosted, macos]
`;

describe('the catalog as a YAML file', () => {
  it('parses, with paths next to the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekiden-images-'));
    const file = join(dir, 'fleet.yaml');
    writeFileSync(file, CATALOG_YAML);
    const c = loadFleetConfigFile(file, {});
    expect(c.registry).toEqual({ url: 'https://registry.example.com:5000', host: 'registry.example.com:5000', insecure: false, username: 'ekiden', passwordEnv: 'EKIDEN_REGISTRY_PASSWORD', caFile: join(dir, 'certs/registry-ca.pem') });
    expect(c.images.map((i) => [i.name, i.template, i.keep, i.promote, i.schedule?.catchupWindowMs])).toEqual([
      ['linux-runner', join(dir, 'packer/linux-runner'), 5, 'auto', 7_200_000],
      ['macos-runner', '/etc/ekiden/packer/macos.pkr.hcl', 5, 'manual', undefined],
    ]);
    expect(c.pools.map((p) => p.image)).toEqual(['catalog:linux-runner', 'catalog:macos-runner']);
  });
});

describe('secrets of the catalog', () => {
  const SECRET = 'hunter2-Sup3r$ecret-token';

  it('an inline password is refused, says where it goes, and never repeats it', () => {
    const message = errorOf(edited((d) => (d.registry.password = SECRET)));
    expect(message).toBe(
      'registry.password: a password is never written in the config file; name where it is instead, with passwordEnv (an environment variable) or passwordFile (an absolute path)',
    );
    expect(message).not.toContain(SECRET);
    expect(errorOf(edited((d) => (d.registry.passwordEnv = SECRET)))).not.toContain(SECRET);
  });

  it('the parsed settings hold the references, not the secret', () => {
    const c = parseFleetConfig(doc, { EKIDEN_REGISTRY_PASSWORD: SECRET, BUILD_TOKEN: SECRET });
    expect(JSON.stringify(c)).not.toContain(SECRET);
  });

  it('the password from the named variable, at use time', () => {
    const registry = parseFleetConfig(doc, {}).registry!;
    expect(resolveRegistryPassword(registry, { EKIDEN_REGISTRY_PASSWORD: SECRET })).toBe(SECRET);
    expect(() => resolveRegistryPassword(registry, {})).toThrow(/^registry\.passwordEnv: environment variable EKIDEN_REGISTRY_PASSWORD is empty; export the registry password there$/);
    expect(resolveRegistryPassword({ url: 'https://r', host: 'r', insecure: false }, {})).toBeUndefined();
  });

  it('the password from the named file, checked like a config file; errors name the field, never the content', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekiden-images-'));
    const at = (file: string) => ({ url: 'https://r', host: 'r', insecure: false, username: 'u', passwordFile: file });
    writeFileSync(join(dir, 'pw'), `${SECRET}\n`);
    expect(resolveRegistryPassword(at(join(dir, 'pw')), {})).toBe(SECRET);
    writeFileSync(join(dir, 'two'), `${SECRET}\nmore\n`);
    writeFileSync(join(dir, 'empty'), '\n');
    writeFileSync(join(dir, 'big'), SECRET.repeat(1000));
    writeFileSync(join(dir, 'locked'), SECRET);
    chmodSync(join(dir, 'locked'), 0o000);
    const cases: Array<[string, RegExp]> = [
      ['missing', /^registry\.passwordFile: .*missing: cannot read the registry password file \(no such file\); check the path$/],
      ['two', /^registry\.passwordFile: .*two holds more than one line; keep only the password in it$/],
      ['empty', /^registry\.passwordFile: .*empty is empty; write the registry password in it$/],
      ['big', /^registry\.passwordFile: .*big: cannot read the registry password file \(it is 25000 bytes, more than the 16384/],
      ['.', /^registry\.passwordFile: .*: cannot read the registry password file \(it is a directory\); give the path of a file$/],
    ];
    if (process.getuid?.() !== 0) cases.push(['locked', /^registry\.passwordFile: .*locked: cannot read the registry password file \(permission denied\)/]);
    for (const [name, want] of cases) {
      let message = '';
      try {
        resolveRegistryPassword(at(join(dir, name)), {});
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        message = errorMessage(err);
      }
      expect(message, name).toMatch(want);
      expect(message).not.toContain(SECRET);
    }
  });

  it('Packer variables given as { env } are read at build time only', () => {
    const linux = parseFleetConfig(doc, {}).images[0]!;
    expect(resolveImageVariables(linux, { BUILD_TOKEN: SECRET }, 'images[0]')).toEqual({ runner_version: '2.330.0', disk_gb: 20, headless: true, token: SECRET });
    expect(() => resolveImageVariables(linux, {}, 'images[0]')).toThrow(/^images\[0\]\.variables\.token\.env: environment variable BUILD_TOKEN is empty; export the value there on the build host$/);
  });
});
