/**
 * The operator CLI (`ekiden pool …`, `status`, `runners`, `hosts`): argument errors exit 2
 * with one line before anything is contacted, an unreachable server exits 1 with one line,
 * and every verb works end to end against the run's real Temporal server, with stand-in
 * Pool/Host/Runner workflows (test/cli/stand-in-workflows.ts) behind the real type names.
 */
import { waitUntil } from '../support/wait.js';
import { DEFAULT_BACKOFF, DEFAULT_RUNNER_TIMING } from '../../core/defaults.js';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parsePoolCommand, runPoolCommand } from '../../cli/pool.js';
import { connectTemporal, explain, withTimeout, type TemporalSession } from '../../cli/temporal.js';
import { formatAge, formatTable } from '../../cli/table.js';
import { hostWorkflowId, poolWorkflowId, runnerWorkflowId } from '../../core/names.js';
import { SA_HOST, SA_PHASE, SA_POOL, SA_RUNNER } from '../../core/search-attributes.js';
import type { HostRow, PoolRow, RunnerRow } from '../../cli/fleet.js';
import type { ControlRow } from '../../cli/status.js';
import { poolStatusQuery, type PoolStatus } from '../../workflows/api.js';
import { installRuntime } from '../../workers/logging.js';
import { ROOT } from '../support/harness.js';
import { ekiden, oneLine } from './in-process.js';

const BIN = join(ROOT, 'bin', 'ekiden.js');
const dir = mkdtempSync(join(tmpdir(), 'ekiden-fleet-cli-'));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const POOL_ARGS = ['--hosts', 'a,b', '--image', 'img', '--labels', 'x,y'];

describe('output helpers', () => {
  it('formats ages', () => {
    expect(formatAge(0)).toBe('0s');
    expect(formatAge(45_900)).toBe('45s');
    expect(formatAge(192_000)).toBe('3m12s');
    expect(formatAge(2 * 3600_000 + 5 * 60_000)).toBe('2h05m');
    expect(formatAge(3 * 86400_000 + 4 * 3600_000)).toBe('3d04h');
    expect(formatAge(undefined)).toBe('-');
    expect(formatAge(-5)).toBe('-');
  });

  it('aligns columns without trailing spaces', () => {
    expect(formatTable(['A', 'LONGER'], [['xyz', '1'], ['', '22']])).toBe('A    LONGER\nxyz  1\n     22');
  });

  it('a call cut off at its deadline reads "no answer" whether gRPC said DEADLINE_EXCEEDED or CANCELLED', async () => {
    // Calls sharing one connection: another call's deadline can surface as CANCELLED (1).
    const failing = (code: number, afterMs: number) =>
      ({ connection: { withDeadline: async () => { await new Promise((r) => setTimeout(r, afterMs)); throw Object.assign(new Error(`${code} CODE: Call ended`), { code }); } } }) as unknown as TemporalSession;
    const reason = (session: TemporalSession) => withTimeout(session, 200, async () => 1).then(() => 'answered', (err) => explain(err, 200));
    expect(await reason(failing(1, 220))).toBe('no answer within 0.2s; is a worker serving its task queue?');
    expect(await reason(failing(4, 220))).toBe('no answer within 0.2s; is a worker serving its task queue?');
    // A CANCELLED long before the deadline is not a timeout: its own words are kept.
    expect(await reason(failing(1, 0))).toBe('1 CODE: Call ended');
    expect(await reason(failing(5, 220))).toBe('5 CODE: Call ended');
  });
});

describe('argument errors: exit 2, one line, nothing contacted', () => {
  let server: Server;
  let address: string;
  let connections = 0;
  const yaml = file('fleet.yaml', 'pools:\n  - { name: ios, hosts: [m1], image: img, labels: [macos] }\n');
  const typo = file('typo.yaml', 'pools:\n  - { name: ios, hosts: [m1], image: img, labels: [macos], sise: 2 }\n');
  const broken = file('broken.yaml', 'pools:\n  - name: ios\n   hosts: [m1]\n');

  beforeAll(async () => {
    server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.close();
    expect(connections).toBe(0);
  });

  it.each([
    [['pool'], /^ekiden: pool: missing verb; use create, scale, drain, resume or delete \(`ekiden pool --help`\)$/],
    [['pool', 'frob', 'x'], /^ekiden: pool: unknown verb "frob"; use create, scale/],
    [['pools'], /^ekiden: unknown command "pools"/],
    [['pool', 'scale'], /^ekiden: pool scale: NAME is missing; usage: ekiden pool scale NAME/],
    [['pool', 'scale', 'ios'], /^ekiden: pool scale: give at least one of --size, --min-idle, --max/],
    [['pool', 'scale', 'ios', '--size', '-1'], /^ekiden: --size: "-1" is not a whole number from 0 to 1000 \(runners\); write e\.g\. 2$/],
    [['pool', 'scale', 'ios', '--size=-1'], /^ekiden: --size: "-1" is not a whole number from 0 to 1000 \(runners\); write e\.g\. 2$/],
    [['pool', 'scale', 'ios', '--size', 'abc'], /^ekiden: --size: "abc" is not a whole number from 0 to 1000 \(runners\); write it in decimal digits, e\.g\. 2$/],
    [['pool', 'scale', 'ios', '--size', '1.5'], /^ekiden: --size: "1\.5" is not a whole number from 0 to 1000 \(runners\); write it in decimal digits/],
    [['pool', 'scale', 'ios', '--max', '0'], /^ekiden: --max: "0" is not a whole number from 1 to 1000 \(runners\); write e\.g\. 4$/],
    [['pool', 'scale', 'ios', '--size', '5', '--max', '2'], /^ekiden: --max: 2 is less than --size 5/],
    [['pool', 'scale', 'ios', '--size'], /^ekiden: --size: missing value; write --size VALUE \(--size=VALUE for a value starting with -\)$/],
    [['pool', 'scale', 'iOS Pool', '--size', '1'], /^ekiden: pool scale: "iOS Pool" is not a pool name/],
    [['pool', 'scale', 'a', 'b', '--size', '1'], /^ekiden: pool scale: one NAME only/],
    [['pool', 'drain'], /^ekiden: pool drain: NAME is missing/],
    [['pool', 'resume', '--bogus', 'x'], /^ekiden: unknown option --bogus; see `ekiden help`$/],
    [['pool', 'delete'], /^ekiden: pool delete: NAME is missing/],
    [['pool', 'delete', 'x', '--wait=yes'], /^ekiden: Option '--wait' does not take an argument/],
    [['status', '--bogus'], /^ekiden: unknown option --bogus; see `ekiden help`$/],
    [['status', '--address', 'bad address'], /^ekiden: --address: "bad address" is not HOST:PORT; write e\.g\. 127\.0\.0\.1:7233$/],
    [['hosts', '--config', file('bad-address.yaml', 'temporal: { address: "a b:1" }\n')], /^ekiden: temporal\.address: "a b:1" is not HOST:PORT/],
    [['status', 'now'], /^ekiden: status: unexpected argument "now"$/],
    [['hosts', 'extra'], /^ekiden: hosts: unexpected argument "extra"$/],
    [['setup', 'now'], /^ekiden: setup: unexpected argument "now"; see `ekiden setup --help`$/],
    [['setup', '--check=yes'], /^ekiden: Option '--check' does not take an argument/],
    [['deployment'], /^ekiden: deployment: missing action; use status or promote \(`ekiden deployment --help`\)$/],
    [['deployment', 'roll'], /^ekiden: deployment: unknown action "roll"; use status, promote or ramp/],
    [['deployment', 'status', 'now'], /^ekiden: deployment status: unexpected argument "now"; see `ekiden deployment status --help`$/],
    [['deployment', 'promote'], /^ekiden: deployment promote: give one BUILD_ID, e\.g\. `ekiden deployment promote 0\.2\.0`$/],
    [['deployment', 'promote', '0.1.0', '0.2.0'], /^ekiden: deployment promote: give one BUILD_ID/],
    [['deployment', 'promote', 'v1:2'], /^ekiden: deployment promote: "v1:2" is not a build id/],
    [['deployment', 'status', '--task-queue'], /^ekiden: --task-queue: missing value/],
    [['deployment', 'ramp', '0.2.0'], /^ekiden: deployment ramp: --percent N is required \(or --stop to end the ramp\)$/],
    [['deployment', 'ramp', '0.2.0', '--percent', '101'], /^ekiden: --percent: "101" is not a whole number from 0 to 100 \(percent\); write e\.g\. 10$/],
    [['deployment', 'ramp', '--percent', '10'], /^ekiden: deployment ramp: give one BUILD_ID, e\.g\. `ekiden deployment ramp 0\.2\.0 --percent 10`$/],
    [['deployment', 'ramp', '0.2.0', '--stop'], /^ekiden: deployment ramp: --stop takes no BUILD_ID or --percent$/],
    [['setup', '--namespace', 'bad ns'], /^ekiden: --namespace: /],
    [['runners', '--phase', 'sleeping'], /^ekiden: --phase: "sleeping" is not one of pulling, credential, /],
    [['runners', '--pool', 'Bad_Pool'], /^ekiden: --pool: "Bad_Pool" is not a valid name; use 1-31 lower-case letters, digits and single dashes/],
    [['runners', '--ui-url', 'not a url'], /^ekiden: --ui-url: "not a url" is not an http\(s\) URL of the Temporal Web UI; write e\.g\. http:\/\/127\.0\.0\.1:8233$/],
    [['pool', 'create'], /^ekiden: pool create: NAME is missing/],
    [['pool', 'create', 'ci', '--image', 'img'], /^ekiden: pool create: --hosts is required without --config/],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--size', '3', '--max', '2'], /^ekiden: --max: 2 is less than size \(3\); raise max or lower size$/],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--credential', 'pat'], /^ekiden: --credential: "pat" is not one of jit, registration-token$/],
    [['pool', 'create', 'ci', '--hosts', 'a,Big_Box', '--image', 'i', '--labels', 'l'], /^ekiden: --hosts: "Big_Box" is not a valid name/],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--memory-mb', 'lots'], /^ekiden: --memory-mb: "lots" is not a whole number from 1 to 1048576 \(MiB, at most 1 TiB\); write it in decimal digits, e\.g\. 8192$/],
    [['pool', 'create', '--config', join(dir, 'missing.yaml')], /^ekiden: .*missing\.yaml: cannot read the config file \(no such file\)/],
    [['pool', 'create', '--config', typo], /^ekiden: pools\[0\]\.sise: unknown field; did you mean size\?$/],
    [['pool', 'create', '--config', broken], /^ekiden: .*broken\.yaml: YAML error at line 3, column \d+: /],
    [['pool', 'create', '--config', yaml, 'android'], /^ekiden: pool create: no pool "android" in .*fleet\.yaml; pools: ios$/],
    [['pool', 'create', '--config', yaml, '--size', '3'], /^ekiden: pool create: --size describes a pool on the command line; with --config the pools come from the file/],
    [['status', '--config', typo], /^ekiden: pools\[0\]\.sise: unknown field/],
  ])('%j', async (args, message) => {
    const r = await ekiden(args.includes('--address') ? args : [...args, '--address', address]);
    expect(r.code, r.err).toBe(2);
    expect(oneLine(r)).toMatch(message);
    expect(r.out).toBe('');
  });

  const big = file('big.yaml', 'pools:\n  - { name: ios, hosts: [m1], image: img, labels: [macos], size: 1e300, max: 1e300 }\n');
  const idle = file('idle.yaml', 'pools:\n  - { name: ios, hosts: [m1], image: img, labels: [macos], timing: { idleTimeoutMs: 1e300 } }\n');
  const group = file('group.yaml', 'pools:\n  - { name: ios, hosts: [m1], image: img, labels: [macos], runnerGroupId: 1e300 }\n');
  const image = file('image.yaml', 'pools:\n  - { name: ios, hosts: [m1], image: "qemu:../../etc", labels: [macos] }\n');
  const SIZE_RULE = 'is not a whole number from 0 to 1000 (runners)';

  it.each([
    // Whole numbers in decimal digits, within the config file's bounds (config/bounds.ts).
    [['pool', 'scale', 'ios', '--size', '1e3'], `--size: "1e3" ${SIZE_RULE}; write it in decimal digits, e.g. 2`],
    [['pool', 'scale', 'ios', '--size', '0x10'], `--size: "0x10" ${SIZE_RULE}; write it in decimal digits, e.g. 2`],
    [['pool', 'scale', 'ios', '--size', ' 3'], `--size: " 3" ${SIZE_RULE}; write it in decimal digits, e.g. 2`],
    [['pool', 'scale', 'ios', '--size', '3 '], `--size: "3 " ${SIZE_RULE}; write it in decimal digits, e.g. 2`],
    [['pool', 'scale', 'ios', '--size', '+3'], `--size: "+3" ${SIZE_RULE}; write it in decimal digits, e.g. 2`],
    [['pool', 'scale', 'ios', '--size', '1001'], `--size: "1001" ${SIZE_RULE}; write e.g. 2`],
    [['pool', 'scale', 'ios', '--min-idle', '1001'], '--min-idle: "1001" is not a whole number from 0 to 1000 (idle runners); write e.g. 1'],
    [['pool', 'scale', 'ios', '--max', '99999999999999999999'], '--max: "99999999999999999999" is not a whole number from 1 to 1000 (runners); write e.g. 4'],
    [['pool', 'scale', 'ios', '--max', '1e300'], '--max: "1e300" is not a whole number from 1 to 1000 (runners); write it in decimal digits, e.g. 4'],
    [['pool', 'scale', 'ios', '--min-idle', '5', '--max', '2'], '--max: 2 is less than --min-idle 5; raise --max or lower --min-idle'],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--size', '1001'], `--size: "1001" ${SIZE_RULE}; write e.g. 2`],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--max', '-3'], '--max: "-3" is not a whole number from 1 to 1000 (runners); write e.g. 4'],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--cpu', '257'], '--cpu: "257" is not a whole number from 1 to 256 (vCPUs); write e.g. 4'],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--memory-mb', '1048577'], '--memory-mb: "1048577" is not a whole number from 1 to 1048576 (MiB, at most 1 TiB); write e.g. 8192'],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--runner-group-id', '2147483648'], '--runner-group-id: "2147483648" is not a whole number from 1 to 2147483647 (a GitHub runner group id); write e.g. 1'],
    // Names, images and text checked at the edge.
    [['pool', 'create', 'ci', '--hosts', 'a', '--image', 'qemu:../../etc', '--labels', 'x'], '--image: "qemu:../../etc" is not a safe image reference (a ".." path segment); write e.g. ghcr.io/OWNER/IMAGE:TAG, qemu:NAME or qemu:/ABSOLUTE/DIR'],
    [['pool', 'create', 'ci', '--hosts', 'a', '--image', 'img --privileged', '--labels', 'x'], '--image: "img --privileged" is not a safe image reference (whitespace or control characters); write e.g. ghcr.io/OWNER/IMAGE:TAG, qemu:NAME or qemu:/ABSOLUTE/DIR'],
    [['pool', 'create', 'ci', '--hosts', '../../x', '--image', 'img', '--labels', 'x'], '--hosts: "../../x" is not a valid name; use 1-31 lower-case letters, digits and single dashes, starting with a letter or digit'],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--runner-dir', '../../root'], '--runner-dir: "../../root" is not a directory without ".." segments; write e.g. actions-runner'],
    [['pool', 'create', 'ci', ...POOL_ARGS, '--task-queue', 'my queue'], '--task-queue: "my queue" is not a task queue name (whitespace; remove it)'],
    [['status', '--namespace', 'a b'], '--namespace: "a b" is not a namespace name (whitespace; remove it)'],
    [['runners', '--host', '../x'], '--host: "../x" is not a valid name; use 1-31 lower-case letters, digits and single dashes, starting with a letter or digit'],
    [['runners', '--ui-url', 'javascript:alert(1)'], '--ui-url: "javascript:alert(1)" is not an http(s) URL of the Temporal Web UI; write e.g. http://127.0.0.1:8233'],
    // The config file through the CLI: the same rules, by field path.
    [['pool', 'create', '--config', big], `pools[0].size: 1e+300 ${SIZE_RULE}; write e.g. 2`],
    [['pool', 'create', '--config', idle], 'pools[0].timing.idleTimeoutMs: 1e+300 is not a whole number from 1 to 2592000000 (ms, at most 30 days); write e.g. 3600000'],
    [['pool', 'create', '--config', group], 'pools[0].runnerGroupId: 1e+300 is not a whole number from 1 to 2147483647 (a GitHub runner group id); write e.g. 1'],
    [['pool', 'create', '--config', image], 'pools[0].image: "qemu:../../etc" is not a safe image reference (a ".." path segment); write e.g. ghcr.io/OWNER/IMAGE:TAG, qemu:NAME or qemu:/ABSOLUTE/DIR'],
  ])('bounded and checked: %j', async (args, message) => {
    const r = await ekiden([...args, '--address', address]);
    expect(r.code, r.err).toBe(2);
    expect(oneLine(r)).toBe(`ekiden: ${message}`);
    expect(r.out).toBe('');
  });

  it('a flag and the config file field give the same rule', async () => {
    const flag = oneLine(await ekiden(['pool', 'create', 'ci', ...POOL_ARGS, '--max', '5000', '--address', address]));
    const field = oneLine(await ekiden(['pool', 'create', '--config', file('max.yaml', 'pools:\n  - { name: ios, hosts: [m1], image: img, labels: [macos], max: 5000 }\n'), '--address', address]));
    expect(flag.replace('--max: "5000"', '')).toBe(field.replace('pools[0].max: 5000', ''));
  });

  it('TEMPORAL_NAMESPACE is checked like --namespace', async () => {
    const r = await ekiden(['hosts', '--address', address], { TEMPORAL_NAMESPACE: 'my namespace' });
    expect(r.code).toBe(2);
    expect(oneLine(r)).toBe('ekiden: TEMPORAL_NAMESPACE: "my namespace" is not a namespace name (whitespace; remove it)');
  });

  it('TEMPORAL_UI_URL is checked like --ui-url', async () => {
    const r = await ekiden(['runners', '--address', address], { TEMPORAL_UI_URL: 'ftp://ui.example' });
    expect(r.code).toBe(2);
    expect(oneLine(r)).toBe('ekiden: TEMPORAL_UI_URL: "ftp://ui.example" is not an http(s) URL of the Temporal Web UI; write e.g. http://127.0.0.1:8233');
  });

  it.each([
    [['up', '--host-id', '../../x'], '--host-id: "../../x" is not a valid name; use 1-31 lower-case letters, digits and single dashes, starting with a letter or digit'],
    [['up', '--host-id', 'BAD ID'], '--host-id: "BAD ID" is not a valid name; use 1-31 lower-case letters, digits and single dashes, starting with a letter or digit'],
    [['up', '--host-id', ''], 'up: --host-id needs a value'],
    [['up', '--data-dir', ''], 'up: --data-dir needs a value'],
    [['up', '--jobs', '-1'], '--jobs: "-1" is not a whole number from 1 to 1000 (demo jobs); write e.g. 3'],
    [['up', '--jobs', '1e3'], '--jobs: "1e3" is not a whole number from 1 to 1000 (demo jobs); write it in decimal digits, e.g. 3'],
    [['up', '--jobs', ' 3'], '--jobs: " 3" is not a whole number from 1 to 1000 (demo jobs); write it in decimal digits, e.g. 3'],
    [['up', '--pool-size', '0x10'], '--pool-size: "0x10" is not a whole number from 1 to 1000 (runners); write it in decimal digits, e.g. 2'],
    [['up', '--pool-size', '1e300'], '--pool-size: "1e300" is not a whole number from 1 to 1000 (runners); write it in decimal digits, e.g. 2'],
    [['up', '--idle-timeout', '2592001'], '--idle-timeout: "2592001" is not a whole number from 1 to 2592000 (s, at most 30 days); write e.g. 3600'],
    [['up', '--labels', 'ok,bad\u0007'], '--labels: "bad\\u0007" is not a label (control characters; remove them)'],
    [['up', 'now'], 'up: unexpected argument "now"; see `ekiden up --help`'],
    [['worker', '--config', 'fleet.yaml', '--host', 'BAD ID'], '--host: "BAD ID" is not a valid name; use 1-31 lower-case letters, digits and single dashes, starting with a letter or digit'],
    [['worker', '--config', 'fleet.yaml', '--host', '../../x'], '--host: "../../x" is not a valid name; use 1-31 lower-case letters, digits and single dashes, starting with a letter or digit'],
  ])('`ekiden up` and `ekiden worker` check their flags the same way: %j', async (args, message) => {
    const r = await ekiden(args);
    expect(r.code, r.err).toBe(2);
    expect(oneLine(r)).toBe(`ekiden: ${message}`);
    expect(r.out).toBe('');
  });

  it('as a process: `ekiden pool scale ios --size abc` exits 2 with one line', async () => {
    const r = await execa(process.execPath, [BIN, 'pool', 'scale', 'ios', '--size', 'abc', '--address', address], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe('ekiden: --size: "abc" is not a whole number from 0 to 1000 (runners); write it in decimal digits, e.g. 2');
    expect(r.stdout).toBe('');
  });

  it('`ekiden control` checks its arguments and its file before connecting: exit 2, one line naming the fix', async () => {
    for (const [args, line] of [
      [['control'], 'ekiden: control: --config FILE is required'],
      [['control', '--config', 'f.yaml', 'now'], 'ekiden: control: unexpected argument "now"; see `ekiden control --help`'],
    ] as Array<[string[], string]>) {
      const u = await execa(process.execPath, [BIN, ...args], { reject: false });
      expect(u.exitCode).toBe(2);
      expect(u.stderr.trim()).toBe(line);
    }
    const noGitHub = file('control-no-github.yaml', 'control: { interval: 5m }\n');
    const r = await execa(process.execPath, [BIN, 'control', '--config', noGitHub], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe('ekiden control: github: missing; the control plane needs e.g. { scope: "org:acme", auth: { tokenEnv: GITHUB_TOKEN } }');
    const badInterval = file('control-bad-interval.yaml', 'github: { scope: "org:acme", auth: { tokenEnv: GITHUB_TOKEN } }\ncontrol: { interval: 1s }\n');
    const r2 = await execa(process.execPath, [BIN, 'control', '--config', badInterval], { reject: false, env: { GITHUB_TOKEN: 'x' } });
    expect(r2.exitCode).toBe(2);
    expect(r2.stderr.trim()).toMatch(/^ekiden control: control\.interval: "1s" is not a duration from 10s to 1d/);
    // The registry (for retention) is read before anything starts: its password variable must be set.
    const withRegistry = file('control-registry.yaml', 'github: { scope: "org:acme", auth: { tokenEnv: GITHUB_TOKEN } }\nregistry: { url: "https://registry.example.com", username: ekiden, passwordEnv: EKIDEN_REG_PW }\n');
    const r3 = await execa(process.execPath, [BIN, 'control', '--config', withRegistry], { reject: false, env: { GITHUB_TOKEN: 'x' } });
    expect(r3.exitCode).toBe(2);
    expect(r3.stderr.trim()).toMatch(/^ekiden control: registry\.passwordEnv: /);
  });

  it('`ekiden worker` with a fleet file: --host picks the entry, and is needed when there are several', async () => {
    const two = file(
      'two-hosts.yaml',
      `github: { scope: "org:acme", auth: { tokenEnv: GITHUB_TOKEN } }
hosts:
  - { id: m1, dataDir: /tmp/m1, driver: { kind: tart, root: /tmp/m1/vms } }
  - { id: m2, dataDir: /tmp/m2, driver: { kind: tart, root: /tmp/m2/vms } }
`,
    );
    const without = await execa(process.execPath, [BIN, 'worker', '--config', two], { reject: false, env: { GITHUB_TOKEN: 'x' } });
    expect(without.exitCode).toBe(2);
    expect(without.stderr.trim()).toBe("ekiden worker: hosts: the file defines 2 hosts (m1, m2); pick this machine's with --host ID");
    const wrong = await execa(process.execPath, [BIN, 'worker', '--config', two, '--host', 'm3'], { reject: false, env: { GITHUB_TOKEN: 'x' } });
    expect(wrong.exitCode).toBe(2);
    expect(wrong.stderr.trim()).toBe('ekiden worker: --host: no host "m3" in the file; hosts: m1, m2');
  });

  const COMMON = ['--address', '--namespace', '--config', '--data-dir', '--json'];
  it.each(
    (
      [
        [['pool', 'create'], ['--config', '--hosts', '--image', '--image-digest', '--labels', '--size', '--min-idle', '--max', '--cpu', '--memory-mb', '--credential', '--runner-group-id', '--runner-dir', '--task-queue', '--address', '--namespace', '--json']],
        [['pool', 'scale'], ['--size', '--min-idle', '--max', ...COMMON]],
        [['pool', 'drain'], COMMON],
        [['pool', 'resume'], COMMON],
        [['pool', 'delete'], ['--wait', ...COMMON]],
        [['pool'], ['pool create', 'pool scale', 'pool drain', 'pool resume', 'pool delete']],
        [['status'], COMMON],
        [['runners'], ['--pool', '--host', '--phase', '--ui-url', ...COMMON]],
        [['hosts'], COMMON],
        [['setup'], ['--check', ...COMMON]],
        [['deployment', 'status'], ['--deployment', '--task-queue', ...COMMON]],
        [['deployment', 'promote'], ['--deployment', '--task-queue', ...COMMON]],
        [['deployment', 'ramp'], ['--percent', '--stop', '--deployment', '--task-queue', ...COMMON]],
        [['deployment'], ['deployment status', 'deployment promote', 'deployment ramp']],
        [['up'], ['--driver', '--jobs', '--data-dir', '--pool-size', '--labels', '--host-id', '--idle-timeout']],
        [['worker'], ['--config', '--host']],
        [['control'], ['--config']],
        [['webhook'], ['--config', '--port', '--host', '--secret-env', '--temporal', '--namespace']],
      ] as Array<[string[], string[]]>
    ).flatMap(([verb, flags]) => [
      [[...verb, '--help'], flags],
      [[...verb, '-h'], flags],
    ]),
  )('%j prints the usage with every flag to stdout and exits 0', async (args, flags) => {
    const r = await ekiden(args);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe('');
    const verb = args.filter((a) => !a.startsWith('-')).join(' ');
    expect(r.out).toMatch(/^usage:/);
    expect(r.out).toContain(`ekiden ${verb}`);
    for (const flag of flags) expect(r.out, flag).toMatch(new RegExp(`(^|[\\s\\[,])${flag}(?![\\w-])`, 'm'));
  });

  it('help wins over other arguments, and `ekiden help VERB` is `ekiden VERB --help`', async () => {
    const help = await ekiden(['pool', 'create', '--help']);
    expect(await ekiden(['pool', 'create', 'ci', '--size', 'lots', '--help'])).toEqual(help);
    expect(await ekiden(['help', 'pool', 'create'])).toEqual(help);
    expect((await ekiden(['help', 'up'])).out).toMatch(/^usage: ekiden up /);
    // A value that happens to be "-h" is a value, not a request for help.
    expect((await ekiden(['runners', '--pool', '-h', '--address', address])).code).toBe(2);
  });

  it('`ekiden --version` prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(await ekiden(['--version'])).toEqual({ code: 0, out: `ekiden ${version}`, err: '' });
    const r = await execa(process.execPath, [BIN, '--version'], { reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`ekiden ${version}`);
    const help = await execa(process.execPath, [BIN, 'status', '--help'], { reject: false });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toMatch(/^usage: ekiden status /);
  });

  it('`ekiden help` lists every verb', async () => {
    const r = await ekiden(['help']);
    expect(r.code).toBe(0);
    for (const verb of ['ekiden up', 'ekiden worker --config FILE [--host ID]', 'ekiden webhook', 'pool create', 'pool scale', 'pool drain', 'pool resume', 'pool delete', 'ekiden status', 'ekiden runners', 'ekiden hosts', 'ekiden setup', '--json']) {
      expect(r.out).toContain(verb);
    }
  });
});

describe('an unreachable server: exit 1, one line', () => {
  async function closedPort(): Promise<number> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return port;
  }

  it.each([['status'], ['hosts'], ['runners'], ['pool', 'scale', 'ios', '--size', '1'], ['pool', 'create', 'ci', ...POOL_ARGS]])('%j: refused at once', async (...args) => {
    const port = await closedPort();
    const started = Date.now();
    const r = await ekiden([...args, '--address', `127.0.0.1:${port}`]);
    expect(r.code, r.err).toBe(1);
    expect(oneLine(r)).toBe(`ekiden: cannot reach Temporal at 127.0.0.1:${port}: connection refused (is the server running?)`);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(r.out).toBe('');
  });

  it('a listener that is not Temporal: one line after the connect timeout', async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const started = Date.now();
      const r = await ekiden(['status', '--address', `127.0.0.1:${port}`]);
      expect(r.code, r.err).toBe(1);
      expect(oneLine(r)).toMatch(new RegExp(`^ekiden: cannot reach Temporal at 127\\.0\\.0\\.1:${port}: .+`));
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      server.close();
    }
  });

  it('the address comes from --address, else the config file, else TEMPORAL_ADDRESS', async () => {
    const [p1, p2, p3] = [await closedPort(), await closedPort(), await closedPort()];
    const env = { TEMPORAL_ADDRESS: `127.0.0.1:${p1}` };
    expect(oneLine(await ekiden(['status'], env))).toMatch(new RegExp(`^ekiden: cannot reach Temporal at 127\\.0\\.0\\.1:${p1}: `));
    const fromFile = file('elsewhere.yaml', `temporal: { address: "127.0.0.1:${p2}" }\n`);
    expect(oneLine(await ekiden(['hosts', '--config', fromFile], env))).toMatch(new RegExp(`^ekiden: cannot reach Temporal at 127\\.0\\.0\\.1:${p2}: `));
    const flag = await ekiden(['hosts', '--config', fromFile, '--address', `127.0.0.1:${p3}`], env);
    expect(oneLine(flag)).toMatch(new RegExp(`^ekiden: cannot reach Temporal at 127\\.0\\.0\\.1:${p3}: `));
    const bad = await ekiden(['hosts'], { TEMPORAL_ADDRESS: 'not an address' });
    expect(bad.code).toBe(2);
    expect(oneLine(bad)).toBe('ekiden: TEMPORAL_ADDRESS: "not an address" is not HOST:PORT; write e.g. 127.0.0.1:7233');
  });
});

const skip = inject('temporalMissing');

describe.skipIf(skip)('against a real server, with stand-in workflows', () => {
  const address = inject('temporalAddress');
  const tag = Math.random().toString(36).slice(2, 7);
  const taskQueue = `fleet-cli-${tag}`;
  const poolA = `cli-${tag}-a`;
  const poolB = `cli-${tag}-b`;
  const poolC = `cli-${tag}-c`;
  const host1 = `cli-${tag}-h1`;
  const conn = ['--address', address];
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  const started: string[] = [];

  beforeAll(async () => {
    installRuntime({ level: 'WARN', sink: () => {} });
    nativeConnection = await NativeConnection.connect({ address });
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    worker = await Worker.create({
      connection: nativeConnection,
      taskQueue,
      workflowsPath: fileURLToPath(new URL('./stand-in-workflows.ts', import.meta.url)),
    });
    running = worker.run();
  });

  afterAll(async () => {
    for (const id of [...started, poolWorkflowId(poolA), poolWorkflowId(poolB), poolWorkflowId(poolC)]) {
      await client?.workflow
        .getHandle(id)
        .terminate('test over')
        .catch(() => {});
    }
    worker?.shutdown();
    await running;
    await connection?.close();
    await nativeConnection?.close();
  });

  async function json<T>(args: string[]): Promise<T> {
    const r = await ekiden([...args, '--json', ...conn]);
    expect(r.code, r.err).toBe(0);
    return JSON.parse(r.out) as T;
  }

  it('pool create --config starts every pool of the file; a second create is refused and changes nothing', async () => {
    const fleet = file(
      `fleet-${tag}.yaml`,
      `temporal: { address: "${address}", taskQueue: ${taskQueue} }
hosts:
  - { id: ${host1}, dataDir: /tmp/x, driver: { kind: fake, root: /tmp/x/vms, images: {} } }
pools:
  - { name: ${poolA}, hosts: [${host1}], image: img, labels: [self-hosted, linux], size: 2, minIdle: 1, max: 4 }
  - { name: ${poolB}, hosts: [${host1}], image: img, labels: [self-hosted, linux] }
`,
    );
    const r = await ekiden(['pool', 'create', '--config', fleet]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`pool ${poolA}: created pool/${poolA} on task queue ${taskQueue}: size 2, min-idle 1, max 4 on ${host1}`);
    expect(r.out).toContain(`pool ${poolB}: created`);
    const described = await client.workflow.getHandle(poolWorkflowId(poolA)).describe();
    expect(described.type).toBe('PoolWorkflow');
    expect(described.taskQueue).toBe(taskQueue);
    expect(described.typedSearchAttributes.get(SA_POOL)).toBe(poolA);

    const again = await ekiden(['pool', 'create', '--config', fleet, poolA, '--json']);
    expect(again.code).toBe(1);
    expect(oneLine(again)).toBe(`ekiden: pool ${poolA} already exists; use \`ekiden pool scale\``);
    expect(JSON.parse(again.out)).toEqual([{ pool: poolA, workflowId: `pool/${poolA}`, created: false, error: `pool ${poolA} already exists; use \`ekiden pool scale\`` }]);
    const after = await client.workflow.getHandle(poolWorkflowId(poolA)).describe();
    expect(after.runId).toBe(described.runId);
  });

  it('pool create from flags, with --json', async () => {
    const results = await json<Array<{ pool: string; created: boolean; runId: string }>>([
      'pool', 'create', poolC, '--hosts', host1, '--image', 'img', '--labels', 'self-hosted,linux', '--size', '1', '--max', '3', '--task-queue', taskQueue,
    ]);
    expect(results).toMatchObject([{ pool: poolC, created: true }]);
    const status = await client.workflow.getHandle(poolWorkflowId(poolC)).query(poolStatusQuery);
    expect(status.config).toEqual({
      name: poolC,
      hosts: [host1],
      image: 'img',
      labels: ['self-hosted', 'linux'],
      runnerGroupId: 1,
      runnerDir: 'actions-runner',
      credential: 'jit',
      size: 1,
      minIdle: 0,
      max: 3,
      timing: DEFAULT_RUNNER_TIMING,
      backoff: DEFAULT_BACKOFF,
    });
  });

  function twoPools(name: string, pools: [string, string]): string {
    return file(
      `${name}-${tag}.yaml`,
      `temporal: { address: "${address}", taskQueue: ${taskQueue} }
pools:
  - { name: ${pools[0]}, hosts: [${host1}], image: img, labels: [self-hosted] }
  - { name: ${pools[1]}, hosts: [${host1}], image: img, labels: [self-hosted] }
`,
    );
  }

  it('pool create --config is all or none: nothing starts while one of its pools exists, and the rerun works', async () => {
    const [x, y] = [`cli-${tag}-x`, `cli-${tag}-y`];
    started.push(poolWorkflowId(x), poolWorkflowId(y));
    const fleet = twoPools('all-or-none', [x, y]);
    const first = await ekiden(['pool', 'create', '--config', fleet, y]);
    expect(first.code, first.err).toBe(0);

    const refused = await ekiden(['pool', 'create', '--config', fleet, '--json']);
    expect(refused.code).toBe(1);
    expect(oneLine(refused)).toBe(`ekiden: pool ${y} already exists; use \`ekiden pool scale\`; created none of ${x}, ${y}`);
    expect(JSON.parse(refused.out)).toEqual([
      { pool: x, workflowId: `pool/${x}`, created: false },
      { pool: y, workflowId: `pool/${y}`, created: false, error: `pool ${y} already exists; use \`ekiden pool scale\`` },
    ]);
    await expect(client.workflow.getHandle(poolWorkflowId(x)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    expect((await ekiden(['pool', 'delete', y, '--wait', ...conn])).code).toBe(0);
    const rerun = await ekiden(['pool', 'create', '--config', fleet]);
    expect(rerun.code, rerun.err).toBe(0);
    expect(rerun.out.split('\n').map((line) => line.split(':')[0])).toEqual([`pool ${x}`, `pool ${y}`]);
  });

  it('pool create --config: when a start fails after another succeeded, that one is removed again and the rerun works', async () => {
    const [p, q] = [`cli-${tag}-p`, `cli-${tag}-q`];
    started.push(poolWorkflowId(p), poolWorkflowId(q));
    const fleet = twoPools('rollback', [p, q]);
    const cmd = parsePoolCommand(['create', '--config', fleet, '--json'], {});
    const session = await connectTemporal(cmd.target);
    const out: string[] = [];
    const err: string[] = [];
    try {
      // The server refuses the second start (as it may for a reason of its own, or a pool
      // created by someone else in between): the first pool is already running by then.
      const workflows = session.client.workflow;
      const start = workflows.start.bind(workflows);
      workflows.start = ((type: string, options: { workflowId: string }) =>
        options.workflowId === poolWorkflowId(q) ? Promise.reject(new Error('injected: the server refused the start')) : start(type, options as never)) as unknown as typeof workflows.start;
      const code = await runPoolCommand(session, { env: {}, out: (t) => out.push(t), err: (t) => err.push(t), now: () => Date.now() }, cmd);
      expect(code).toBe(1);
    } finally {
      await session.close();
    }
    expect(err).toEqual([`ekiden: pool ${q}: injected: the server refused the start; created none of ${p}, ${q} (pool ${p} was started and has been cancelled again)`]);
    expect(JSON.parse(out.join('\n'))).toEqual([
      { pool: p, workflowId: `pool/${p}`, created: false, runId: expect.any(String), rolledBack: 'cancelled' },
      { pool: q, workflowId: `pool/${q}`, created: false, error: `pool ${q}: injected: the server refused the start` },
    ]);
    expect((await client.workflow.getHandle(poolWorkflowId(p)).describe()).status.name).toBe('CANCELLED');
    await expect(client.workflow.getHandle(poolWorkflowId(q)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    const rerun = await ekiden(['pool', 'create', '--config', fleet]);
    expect(rerun.code, rerun.err).toBe(0);
    expect(rerun.out).toContain(`pool ${p}: created pool/${p}`);
    expect(rerun.out).toContain(`pool ${q}: created pool/${q}`);
  });

  it('pool scale applies the update and prints the status; a rejected one exits 1 with its message', async () => {
    const status = await json<PoolStatus>(['pool', 'scale', poolA, '--size', '3', '--min-idle', '0']);
    expect(status.config).toMatchObject({ size: 3, minIdle: 0, max: 4 });
    expect(status.target).toBe(3);

    const human = await ekiden(['pool', 'scale', poolA, '--max', '5', ...conn]);
    expect(human.code, human.err).toBe(0);
    expect(human.out).toBe(`pool ${poolA}: target 3 (size 3, min-idle 0, max 5); 0 starting, 2 idle, 1 busy, 0 cleaning; 2 pending job(s)`);

    const rejected = await ekiden(['pool', 'scale', poolA, '--size', '9', ...conn]);
    expect(rejected.code).toBe(1);
    expect(oneLine(rejected)).toBe(`ekiden: pool ${poolA}: rejected: size 9 is more than max 5; raise max too`);
    const unchanged = await json<PoolStatus>(['pool', 'scale', poolA, '--min-idle', '0']);
    expect(unchanged.config).toMatchObject({ size: 3, max: 5 });
  });

  it('pool drain and resume', async () => {
    const drained = await json<PoolStatus>(['pool', 'drain', poolB]);
    expect(drained).toMatchObject({ pool: poolB, draining: true, target: 0 });
    const human = await ekiden(['pool', 'drain', poolB, ...conn]);
    expect(human.out).toMatch(new RegExp(`^pool ${poolB}: target 0 .*; draining$`));
    const resumed = await json<PoolStatus>(['pool', 'resume', poolB]);
    expect(resumed).toMatchObject({ pool: poolB, draining: false });
  });

  it('verbs on a pool that does not exist exit 1 with one line', async () => {
    const missing = `cli-${tag}-nope`;
    for (const args of [['pool', 'scale', missing, '--size', '1'], ['pool', 'drain', missing], ['pool', 'delete', missing]]) {
      const r = await ekiden([...args, ...conn]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(oneLine(r)).toBe(`ekiden: pool ${missing} does not exist (no running pool/${missing}); create it with \`ekiden pool create\``);
    }
  });

  it('hosts, runners and status read the fleet', async () => {
    const host = await client.workflow.start('HostWorkflow', {
      workflowId: hostWorkflowId(host1),
      taskQueue,
      args: [{ id: host1, capacity: 2, leases: 1 }],
      typedSearchAttributes: [{ key: SA_HOST, value: host1 }],
    });
    started.push(host.workflowId);
    for (const [slot, phase] of [
      [1, 'idle'],
      [2, 'busy'],
    ] as const) {
      const runner = await client.workflow.start('RunnerWorkflow', {
        workflowId: runnerWorkflowId(poolA, slot),
        taskQueue,
        args: [],
        typedSearchAttributes: [
          { key: SA_POOL, value: poolA },
          { key: SA_HOST, value: host1 },
          { key: SA_PHASE, value: phase },
          { key: SA_RUNNER, value: `ekiden-${poolA}-000000${slot}` },
        ],
      });
      started.push(runner.workflowId);
    }

    const hosts = await waitUntil(() => json<HostRow[]>(['hosts']), (rows) => rows.some((h) => h.id === host1), 30_000, 'hosts');
    const mine = hosts.find((h) => h.id === host1)!;
    expect(mine.workflowId).toBe(`host/${host1}`);
    expect(mine.status).toMatchObject({ id: host1, state: 'up', capacity: 2, announcement: { driver: 'fake', version: '0.1.0-test' } });
    expect(mine.status!.leases).toHaveLength(1);
    const hostsTable = await ekiden(['hosts', ...conn]);
    expect(hostsTable.out.split('\n')[0]).toMatch(/^HOST\s+STATE\s+DRIVER\s+USED\s+LAST SEEN\s+VERSION\s+LABELS$/);
    expect(hostsTable.out).toMatch(new RegExp(`^${host1}\\s+up\\s+fake\\s+1/2\\s+\\d+s ago\\s+0\\.1\\.0-test\\s+linux,x64$`, 'm'));

    const ui = 'http://ui.example:8080';
    const runners = await waitUntil(
      () => json<RunnerRow[]>(['runners', '--pool', poolA, '--ui-url', ui]),
      (rows) => rows.length === 2,
      30_000,
      'runners',
    );
    expect(runners.map((r) => [r.workflowId, r.pool, r.host, r.phase, r.runner])).toEqual([
      [`runner/${poolA}/1`, poolA, host1, 'idle', `ekiden-${poolA}-0000001`],
      [`runner/${poolA}/2`, poolA, host1, 'busy', `ekiden-${poolA}-0000002`],
    ]);
    expect(runners[0]!.url).toBe(`${ui}/namespaces/default/workflows/${encodeURIComponent(`runner/${poolA}/1`)}`);
    expect(Date.now() - runners[0]!.startedAt).toBeLessThan(120_000);
    const busy = await json<RunnerRow[]>(['runners', '--pool', poolA, '--phase', 'busy']);
    expect(busy.map((r) => r.workflowId)).toEqual([`runner/${poolA}/2`]);
    expect(busy[0]!.url).toBe(`http://127.0.0.1:8233/namespaces/default/workflows/runner%2F${poolA}%2F2`);
    const onHost = await json<RunnerRow[]>(['runners', '--host', host1]);
    expect(onHost).toHaveLength(2);
    const fromEnv = await ekiden(['runners', '--pool', poolA, ...conn], { TEMPORAL_UI_URL: 'https://temporal.example.com/' });
    expect(fromEnv.out.split('\n')[0]).toMatch(/^RUNNER\s+POOL\s+HOST\s+PHASE\s+AGE\s+JOB\s+WEB UI$/);
    expect(fromEnv.out).toContain(`https://temporal.example.com/namespaces/default/workflows/runner%2F${poolA}%2F1`);

    const status = await waitUntil(
      () => json<{ pools: PoolRow[]; hosts: HostRow[]; runners: RunnerRow[] }>(['status']),
      (s) => [poolA, poolB, poolC].every((p) => s.pools.some((row) => row.name === p)),
      30_000,
      'status',
    );
    const a = status.pools.find((p) => p.name === poolA)!;
    expect(a).toMatchObject({ workflowId: `pool/${poolA}`, status: { pool: poolA, config: { size: 3, max: 5 }, target: 3, pendingJobs: 2 } });
    expect(status.hosts.some((h) => h.id === host1)).toBe(true);
    expect(status.runners.filter((r) => r.pool === poolA)).toHaveLength(2);

    const table = await ekiden(['status', ...conn]);
    expect(table.code, table.err).toBe(0);
    const lines = table.out.split('\n');
    expect(lines[0]).toBe('POOLS');
    expect(lines).toContain('HOSTS');
    expect(lines).toContain('RUNNERS');
    expect(table.out).toMatch(new RegExp(`^${poolA}\\s+3\\s+3/0/5\\s+0\\s+2\\s+1\\s+0\\s+2\\s+no\\s+1 \\(1 in a row\\)\\s+-$`, 'm'));
    expect(table.out).toMatch(new RegExp(`^  ${poolA}: last failure \\d+\\w+ ago \\(runner/${poolA}/2\\): boot timed out$`, 'm'));
    expect(table.out).toMatch(new RegExp(`^runner/${poolA}/2\\s+${poolA}\\s+${host1}\\s+busy\\s+\\d+s\\s+-$`, 'm'));
  });

  it('a pool nobody serves shows its query error in status instead of hanging it', async () => {
    const orphan = `cli-${tag}-orphan`;
    const handle = await client.workflow.start('PoolWorkflow', {
      workflowId: poolWorkflowId(orphan),
      taskQueue: `nobody-${tag}`,
      args: [{ config: {} }],
      typedSearchAttributes: [{ key: SA_POOL, value: orphan }],
    });
    started.push(handle.workflowId);
    const status = await waitUntil(
      () => json<{ pools: PoolRow[]; control: ControlRow[] }>(['status']),
      (s) => s.pools.some((p) => p.name === orphan),
      30_000,
      'orphan pool',
    );
    expect(status.pools.find((p) => p.name === orphan)).toEqual({ workflowId: `pool/${orphan}`, name: orphan, taskQueue: `nobody-${tag}`, error: 'no answer within 5s; is a worker serving its task queue?' });
    expect(status.pools.find((p) => p.name === poolA)?.status?.pool).toBe(poolA);
    // …and the control-plane section says why: nobody polls its queue.
    expect(status.control.find((c) => c.taskQueue === `nobody-${tag}`)).toEqual({ taskQueue: `nobody-${tag}`, workers: [], builds: [], stranded: [] });
    expect(status.control.find((c) => c.taskQueue === taskQueue)?.workers.length).toBeGreaterThan(0);
    const table = await ekiden(['status', ...conn]);
    expect(table.out).toMatch(new RegExp(`^${orphan}\\s+\\?\\s+\\(query failed: .+\\)$`, 'm'));
    expect(table.out).toContain(`nobody-${tag}: no worker serves it — its pools and runners wait; start \`ekiden control --config FILE\``);
  });

  it('pool delete cancels the pool; --wait reports when it has closed', async () => {
    const quick = await ekiden(['pool', 'delete', poolC, ...conn]);
    expect(quick.code, quick.err).toBe(0);
    expect(quick.out).toMatch(new RegExp(`^pool ${poolC}: deleting; its runners clean up`));

    const waited = await json<{ pool: string; closed: { status: string } }>(['pool', 'delete', poolB, '--wait']);
    expect(waited).toMatchObject({ pool: poolB, cancelRequested: true, closed: { status: 'CANCELLED' } });
    expect((await client.workflow.getHandle(poolWorkflowId(poolB)).describe()).status.name).toBe('CANCELLED');

    const human = await ekiden(['pool', 'delete', poolA, '--wait', ...conn]);
    expect(human.code, human.err).toBe(0);
    expect(human.out).toMatch(new RegExp(`^pool ${poolA}: deleted \\(pool/${poolA} cancelled after \\d+s\\); its runners cleaned up$`));

    const again = await ekiden(['pool', 'delete', poolA, ...conn]);
    expect(again.code).toBe(1);
    expect(oneLine(again)).toBe(`ekiden: pool ${poolA} is not running (pool/${poolA} is cancelled)`);
    const scale = await ekiden(['pool', 'scale', poolA, '--size', '1', ...conn]);
    expect(scale.code).toBe(1);
    expect(oneLine(scale)).toBe(`ekiden: pool ${poolA} is not running (pool/${poolA} has ended); create it again with \`ekiden pool create\``);
  });
});
