/**
 * `ekiden image …` through the real binary (bin/ekiden.js, after `npm run build`): argument
 * mistakes exit 2 with one line before anything is contacted, every verb's --help lists its
 * flags, and against the run's real Temporal server — with a worker in this process serving the
 * workflow bundle on this file's own task queue, so the catalogs really run — apply creates,
 * keeps, updates and deletes catalogs and schedules, the schedule verbs act on the schedule,
 * promote/rollback move the current digest of catalogs fed with build records here, and a
 * followed build that ends badly is one line, exit 1.
 */
import { Client, Connection, ScheduleNotFoundError, type ScheduleDescription } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { imageBuildSpec } from '../../config/image-build-spec.js';
import { imageCatalogWorkflowId, imageScheduleId } from '../../core/names.js';
import { imageBuiltSignal, imageStatusQuery, type ImageBuildRecord, type ImageCatalogStatus } from '../../workflows/api.js';
import { installRuntime } from '../../workers/logging.js';
import { BUNDLE, ROOT } from '../support/harness.js';
import { waitUntil } from '../support/wait.js';
import { cleanEnv } from './ekiden-process.js';

const BIN = join(ROOT, 'bin', 'ekiden.js');
const dir = mkdtempSync(join(tmpdir(), 'ekiden-image-cli-'));
const built = existsSync(join(ROOT, 'dist', 'cli', 'image.js')) && existsSync(BUNDLE);

interface Run {
  code: number;
  out: string;
  err: string;
}

/** The real `ekiden ARGS…`, in a child process, without any TEMPORAL_* of this environment. */
async function ekiden(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await execa(process.execPath, [BIN, ...args], { reject: false, env: cleanEnv(env), extendEnv: false, cwd: dir });
  return { code: r.exitCode ?? -1, out: String(r.stdout), err: String(r.stderr) };
}

function oneLine(r: Run): string {
  const lines = r.err.trim().split('\n');
  expect(lines, r.err).toHaveLength(1);
  return lines[0]!;
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DIGEST = (c: string) => `sha256:${c.repeat(64)}`;
const IMAGE_ENTRY = (name: string, extra = '') =>
  `  - { name: ${name}, kind: qemu, template: /opt/packer/${name}, base: { ref: "qemu:debian" }, repository: ekiden/${name}, buildHosts: [linux-1]${extra} }\n`;

describe('imageBuildSpec', () => {
  it('imageBuildSpec maps the file entry without resolving its environment variables', () => {
    const spec = imageBuildSpec(
      {
        name: 'x',
        kind: 'tart',
        template: '/t',
        variables: { a: 'b', n: 1, yes: true, secret: { env: 'SECRET_VAR' } },
        base: { digest: DIGEST('f') },
        repository: 'r/x',
        buildHosts: ['m1'],
        keep: 2,
        promote: 'manual',
        smokeTest: { timeoutMs: 1000 },
        buildTimeoutMs: 2000,
      },
      { url: 'https://reg:5000', host: 'reg:5000', insecure: false, passwordEnv: 'REGISTRY_PASSWORD', username: 'u' },
    );
    expect(spec).toEqual({
      name: 'x',
      kind: 'tart',
      template: '/t',
      variables: { a: 'b', n: 1, yes: true },
      variablesFromEnv: { secret: 'SECRET_VAR' },
      base: { digest: DIGEST('f') },
      registry: 'reg:5000',
      repository: 'r/x',
      buildHosts: ['m1'],
      buildTimeoutMs: 2000,
      smokeTimeoutMs: 1000,
      promote: 'manual',
      keep: 2,
    });
    expect(JSON.stringify(spec)).not.toContain('REGISTRY_PASSWORD');
  });
});

describe.skipIf(!built)('arguments: exit 2, one line, nothing contacted', () => {
  let server: Server;
  let address: string;
  let connections = 0;
  const fleet = file('args.yaml', `registry: { url: "https://registry.example.com" }\nimages:\n${IMAGE_ENTRY('linux-runner')}`);
  const empty = file('empty.yaml', 'pools: []\n');
  const typo = file('typo.yaml', `registry: { url: "https://registry.example.com" }\nimages:\n${IMAGE_ENTRY('linux-runner', ', kepe: 2')}`);

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
    [['image'], /^ekiden: image: missing verb; use apply, build, list, promote, rollback or schedule \(`ekiden image --help`\)$/],
    [['image', 'frob'], /^ekiden: image: unknown verb "frob"; use apply, build/],
    [['image', 'apply'], /^ekiden: image apply: --config FILE is required \(the images come from the fleet file\); usage: ekiden image apply --config FILE \[NAME\.\.\.\]$/],
    [['image', 'apply', '--config', fleet, 'nope'], /^ekiden: image apply: no image "nope" in .*args\.yaml; images: linux-runner$/],
    [['image', 'apply', '--config', fleet, 'Bad_Name'], /^ekiden: image apply: "Bad_Name" is not an image name; use 1-31 lower-case letters, digits and single dashes$/],
    [['image', 'apply', '--config', empty], /^ekiden: image apply: .*empty\.yaml defines no images; add them under images \(with registry\)$/],
    [['image', 'apply', '--config', typo], /^ekiden: images\[0\]\.kepe: unknown field; did you mean keep\?$/],
    [['image', 'apply', '--config', join(dir, 'missing.yaml')], /^ekiden: .*missing\.yaml: cannot read the config file \(no such file\)/],
    [['image', 'build', '--config', fleet], /^ekiden: image build: NAME is missing; usage: ekiden image build NAME --config FILE \[--wait\]$/],
    [['image', 'build', 'linux-runner'], /^ekiden: image build: --config FILE is required/],
    [['image', 'build', 'a', 'b', '--config', fleet], /^ekiden: image build: unexpected argument "b"; usage: /],
    [['image', 'build', 'linux-runner', '--config', fleet, '--wait=yes'], /^ekiden: Option '--wait' does not take an argument/],
    [['image', 'list', 'a', 'b'], /^ekiden: image list: unexpected argument "b"; usage: ekiden image list \[NAME\]$/],
    [['image', 'list', '--bogus'], /^ekiden: unknown option --bogus; see `ekiden help`$/],
    [['image', 'promote', 'linux-runner'], /^ekiden: image promote: DIGEST is missing; usage: ekiden image promote NAME DIGEST$/],
    [['image', 'promote'], /^ekiden: image promote: NAME and DIGEST are missing; usage: /],
    [['image', 'promote', 'linux-runner', 'sha256:abc'], /^ekiden: image promote: "sha256:abc" is not a digest; write sha256: and 64 lower-case hex digits/],
    [['image', 'promote', 'linux-runner', DIGEST('A')], /^ekiden: image promote: "sha256:A{64}" is not a digest/],
    [['image', 'promote', 'Linux', DIGEST('a')], /^ekiden: image promote: "Linux" is not an image name/],
    [['image', 'promote', 'linux-runner', DIGEST('a'), 'x'], /^ekiden: image promote: unexpected argument "x"/],
    [['image', 'rollback'], /^ekiden: image rollback: NAME is missing; usage: ekiden image rollback NAME$/],
    [['image', 'schedule'], /^ekiden: image schedule: missing verb; use pause, resume, trigger or list/],
    [['image', 'schedule', 'stop', 'x'], /^ekiden: image schedule: unknown verb "stop"; use pause, resume, trigger or list$/],
    [['image', 'schedule', 'pause'], /^ekiden: image schedule pause: NAME is missing; usage: ekiden image schedule pause NAME$/],
    [['image', 'schedule', 'trigger', 'a--b'], /^ekiden: image schedule trigger: "a--b" is not an image name/],
    [['image', 'schedule', 'list', 'UPPER'], /^ekiden: image schedule list: "UPPER" is not an image name/],
    [['image', 'list', '--address', 'no port'], /^ekiden: --address: "no port" is not HOST:PORT/],
  ])('%j', async (args, message) => {
    const r = await ekiden(args.includes('--address') ? args : [...args, '--address', address]);
    expect(r.code, r.err).toBe(2);
    expect(oneLine(r)).toMatch(message);
    expect(r.out).toBe('');
  });

  it.each([
    ['apply', ['--config FILE', '--address HOST:PORT', '--namespace NS', '--data-dir DIR', '--json', '-h, --help']],
    ['build', ['--config FILE', '--wait', '--address HOST:PORT', '--json']],
    ['list', ['--config FILE', '--address HOST:PORT', '--json']],
    ['promote', ['--config FILE', '--address HOST:PORT', '--json']],
    ['rollback', ['--config FILE', '--address HOST:PORT', '--json']],
    ['schedule', ['--config FILE', '--address HOST:PORT', '--json']],
  ])('image %s --help exits 0 and lists its flags', async (verb, flags) => {
    const r = await ekiden(['image', verb, '--help', '--address', address]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`^usage: ekiden image ${verb} `));
    for (const flag of flags) expect(r.out).toContain(`  ${flag}`);
    expect(r.err).toBe('');
  });

  it('`image --help`, `image schedule pause --help` and `ekiden help` list the verbs', async () => {
    const noun = await ekiden(['image', '--help']);
    expect(noun.code).toBe(0);
    for (const verb of ['image apply', 'image build', 'image list', 'image promote', 'image rollback', 'image schedule pause|resume|trigger', 'image schedule list']) {
      expect(noun.out).toContain(`ekiden ${verb}`);
    }
    expect((await ekiden(['image', 'schedule', 'pause', '--help'])).out).toMatch(/^usage: ekiden image schedule pause\|resume\|trigger NAME/);
    expect((await ekiden(['help'])).out).toContain('ekiden image apply --config FILE [NAME...]');
  });

  it('an unreachable server: exit 1, one line', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const r = await ekiden(['image', 'list', '--address', `127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(oneLine(r)).toBe(`ekiden: cannot reach Temporal at 127.0.0.1:${port}: connection refused (is the server running?)`);
  });
});

const skip = inject('temporalMissing') || (!built && 'dist/ missing: run `npm run build` first');

describe.skipIf(skip)('against a real server, with the catalog workflow running', () => {
  const address = inject('temporalAddress');
  const tag = Math.random().toString(36).slice(2, 7);
  const taskQueue = `image-cli-${tag}`;
  const a = `img-${tag}-a`;
  const b = `img-${tag}-b`;
  const c = `img-${tag}-c`;
  const conn = ['--address', address];
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  const workflows = new Set<string>();

  const REGISTRY = 'registry: { url: "https://registry.example.com:5000" }\n';
  const head = `temporal: { address: "${address}", taskQueue: ${taskQueue} }\n${REGISTRY}images:\n`;
  const SCHEDULE_A = ', variables: { size: 20, token: { env: BUILD_TOKEN } }, schedule: { cron: "0 3 * * 1", timezone: Europe/Berlin, catchupWindow: 30m }';

  beforeAll(async () => {
    installRuntime({ level: 'WARN', sink: () => {} });
    nativeConnection = await NativeConnection.connect({ address });
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    worker = await Worker.create({ connection: nativeConnection, taskQueue, workflowBundle: { codePath: BUNDLE } });
    running = worker.run();
  });

  afterAll(async () => {
    for (const name of [a, b, c]) {
      await client?.schedule
        .getHandle(imageScheduleId(name))
        .delete()
        .catch(() => {});
    }
    if (client) {
      for await (const info of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'` })) workflows.add(info.workflowId);
    }
    for (const id of [...workflows, imageCatalogWorkflowId(a), imageCatalogWorkflowId(b), imageCatalogWorkflowId(c)]) {
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

  const describeSchedule = (name: string): Promise<ScheduleDescription> => client.schedule.getHandle(imageScheduleId(name)).describe();
  const catalog = (name: string): Promise<ImageCatalogStatus> => client.workflow.getHandle(imageCatalogWorkflowId(name)).query(imageStatusQuery);

  function record(image: string, digest: string, n: number): ImageBuildRecord {
    return {
      image,
      buildId: `image-build/${image}/build-${n}`,
      digest,
      ref: `registry.example.com:5000/ekiden/${image}@${digest}`,
      bytes: 1536 * 1024 * 1024,
      runnerVersion: `2.33${n}.0`,
      baseDigest: DIGEST('0'),
      templateHash: `hash-${n}`,
      builtAt: `2026-12-0${n}T10:00:00Z`,
      host: 'linux-1',
      durationMs: 600_000,
    };
  }

  it('apply starts the catalogs and creates the schedule; a second apply changes nothing', async () => {
    const fleet = file(`apply-${tag}.yaml`, head + IMAGE_ENTRY(a, SCHEDULE_A) + IMAGE_ENTRY(b, ', promote: manual, keep: 3'));
    const r = await ekiden(['image', 'apply', '--config', fleet]);
    expect(r.code, r.err).toBe(0);
    expect(r.out.split('\n')).toEqual([
      `image ${a}: catalog image/${a} started; schedule image-build/${a} created`,
      `image ${b}: catalog image/${b} started; no schedule`,
    ]);
    // The catalogs run (this worker serves them) with the file's keep.
    expect(await waitUntil(() => catalog(a), (s) => s.image === a, 15_000, 'catalog a')).toMatchObject({ image: a, keep: 5, builds: [], consecutiveFailures: 0 });
    expect((await catalog(b)).keep).toBe(3);
    const described = await client.workflow.getHandle(imageCatalogWorkflowId(a)).describe();
    expect(described.type).toBe('ImageCatalogWorkflow');
    expect(described.taskQueue).toBe(taskQueue);

    const s = await describeSchedule(a);
    expect(s.action.memo).toEqual({ ekidenSchedule: { cron: '0 3 * * 1', timezone: 'Europe/Berlin', paused: false } });
    // The server keeps the cron as a calendar: minute 0, hour 3, Mondays.
    expect(s.spec.calendars).toHaveLength(1);
    expect(s.spec.calendars![0]).toMatchObject({ minute: [{ start: 0, end: 0 }], hour: [{ start: 3, end: 3 }], dayOfWeek: [{ start: 'MONDAY', end: 'MONDAY' }] });
    expect(s.spec.timezone).toBe('Europe/Berlin');
    expect(s.policies.overlap).toBe('SKIP');
    expect(s.policies.catchupWindow).toBe(30 * 60_000);
    expect(s.state.paused).toBe(false);
    expect(s.info.nextActionTimes[0]!.getUTCDay()).toBe(1);
    expect(s.action).toMatchObject({ workflowType: 'ImageBuildWorkflow', workflowId: `image-build/${a}/scheduled`, taskQueue });
    const spec = JSON.parse(JSON.stringify(s.action.args)) as unknown[];
    expect(spec).toEqual([
      {
        trigger: 'schedule',
        spec: {
          name: a,
          kind: 'qemu',
          template: `/opt/packer/${a}`,
          variables: { size: 20 },
          variablesFromEnv: { token: 'BUILD_TOKEN' },
          base: { ref: 'qemu:debian' },
          registry: 'registry.example.com:5000',
          repository: `ekiden/${a}`,
          buildHosts: ['linux-1'],
          buildTimeoutMs: 7_200_000,
          smokeTimeoutMs: 600_000,
          promote: 'auto',
          keep: 5,
        },
      },
    ]);

    const again = await ekiden(['image', 'apply', '--config', fleet, '--json']);
    expect(again.code, again.err).toBe(0);
    expect(JSON.parse(again.out)).toEqual({
      images: [
        { image: a, catalog: { workflowId: `image/${a}`, state: 'running' }, schedule: { scheduleId: `image-build/${a}`, action: 'unchanged', paused: false } },
        { image: b, catalog: { workflowId: `image/${b}`, state: 'running' }, schedule: { scheduleId: `image-build/${b}`, action: 'none' } },
      ],
      deletedSchedules: [],
    });
    const after = await describeSchedule(a);
    expect(after.info.lastUpdatedAt).toEqual(s.info.lastUpdatedAt);
    expect((await client.workflow.getHandle(imageCatalogWorkflowId(a)).describe()).runId).toBe(described.runId);
  });

  it('apply updates what differs, keeps an operator\'s pause, and deletes a dropped schedule', async () => {
    const changed = file(`changed-${tag}.yaml`, head + IMAGE_ENTRY(a, SCHEDULE_A.replace('0 3 * * 1', '30 4 * * *')) + IMAGE_ENTRY(b, ', promote: manual, keep: 3'));
    const r = await ekiden(['image', 'apply', '--config', changed, a]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`image ${a}: catalog image/${a} running; schedule image-build/${a} updated (cron)`);
    expect((await describeSchedule(a)).spec.calendars![0]).toMatchObject({ minute: [{ start: 30, end: 30 }], hour: [{ start: 4, end: 4 }] });

    const paused = await ekiden(['image', 'schedule', 'pause', a, ...conn]);
    expect(paused.code, paused.err).toBe(0);
    expect(paused.out).toBe(`image ${a}: schedule image-build/${a} paused`);
    expect((await describeSchedule(a)).state.paused).toBe(true);
    const kept = await ekiden(['image', 'apply', '--config', changed, a]);
    expect(kept.out).toBe(`image ${a}: catalog image/${a} running; schedule image-build/${a} unchanged (paused by \`ekiden image schedule\`; the file says active)`);
    expect((await describeSchedule(a)).state.paused).toBe(true);

    const resumed = await ekiden(['image', 'schedule', 'resume', a, ...conn]);
    expect(resumed.code, resumed.err).toBe(0);
    expect(resumed.out).toMatch(new RegExp(`^image ${a}: schedule image-build/${a} active; next run \\d{4}-\\d\\d-\\d\\dT0[23]:30:00Z$`));
    expect((await describeSchedule(a)).state.paused).toBe(false);

    // The file's paused: applied when it changes.
    const pausedInFile = file(`paused-${tag}.yaml`, head + IMAGE_ENTRY(a, SCHEDULE_A.replace('0 3 * * 1', '30 4 * * *').replace('30m }', '30m, paused: true }')));
    expect((await ekiden(['image', 'apply', '--config', pausedInFile, a])).out).toBe(`image ${a}: catalog image/${a} running; schedule image-build/${a} updated (paused); paused`);
    expect((await describeSchedule(a)).state).toMatchObject({ paused: true, note: 'paused in the fleet file' });

    const dropped = file(`dropped-${tag}.yaml`, head + IMAGE_ENTRY(a) + IMAGE_ENTRY(b, ', promote: manual, keep: 3'));
    const d = await ekiden(['image', 'apply', '--config', dropped, a]);
    expect(d.code, d.err).toBe(0);
    expect(d.out).toBe(`image ${a}: catalog image/${a} running; schedule image-build/${a} deleted (the entry has no schedule:)`);
    await expect(describeSchedule(a)).rejects.toBeInstanceOf(ScheduleNotFoundError);
    expect((await ekiden(['image', 'apply', '--config', dropped, a])).out).toBe(`image ${a}: catalog image/${a} running; no schedule`);
  });

  it('apply of the whole file deletes the schedules of images it no longer has', async () => {
    const withC = file(`with-c-${tag}.yaml`, head + IMAGE_ENTRY(a) + IMAGE_ENTRY(c, ', schedule: { cron: "@daily" }'));
    expect((await ekiden(['image', 'apply', '--config', withC])).out).toContain(`image ${c}: catalog image/${c} started; schedule image-build/${c} created`);
    // Pruning finds schedules through visibility.
    await waitUntil(
      async () => {
        for await (const s of client.schedule.list()) if (s.scheduleId === imageScheduleId(c)) return true;
        return false;
      },
      (found) => found,
      15_000,
      'schedule c in the visibility list',
    );
    const withoutC = file(`without-c-${tag}.yaml`, head + IMAGE_ENTRY(a));
    const r = await ekiden(['image', 'apply', '--config', withoutC]);
    expect(r.code, r.err).toBe(0);
    expect(r.out.split('\n')).toEqual([`image ${a}: catalog image/${a} running; no schedule`, `image ${c}: not in the file; schedule image-build/${c} deleted`]);
    await expect(describeSchedule(c)).rejects.toBeInstanceOf(ScheduleNotFoundError);
  });

  it('schedule trigger starts a scheduled build; schedule list shows it', async () => {
    const fleet = file(`trigger-${tag}.yaml`, head + IMAGE_ENTRY(a, SCHEDULE_A));
    expect((await ekiden(['image', 'apply', '--config', fleet, a])).code).toBe(0);
    const r = await ekiden(['image', 'schedule', 'trigger', a, ...conn]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`image ${a}: schedule image-build/${a} triggered; the build starts as image-build/${a}/scheduled-<time> (\`ekiden image schedule list ${a}\` shows it)`);
    const s = await waitUntil(() => describeSchedule(a), (d) => d.info.recentActions.length > 0, 20_000, 'the triggered action');
    const started = s.info.recentActions[0]!.action.workflow.workflowId;
    workflows.add(started);
    expect(started).toMatch(new RegExp(`^image-build/${a}/scheduled-\\d{4}-\\d\\d-\\d\\dT`));
    const build = await client.workflow.getHandle(started).describe();
    expect(build.type).toBe('ImageBuildWorkflow');
    expect(build.taskQueue).toBe(taskQueue);

    const list = await ekiden(['image', 'schedule', 'list', a, ...conn]);
    expect(list.code, list.err).toBe(0);
    const [header, row] = list.out.split('\n');
    expect(header).toMatch(/^IMAGE +CRON +STATE +NEXT RUNS +LAST RUN +RUNNING$/);
    expect(row).toContain(`${a}  0 3 * * 1 Europe/Berlin  active`);
    expect(row).toContain(started);
    const rows = JSON.parse((await ekiden(['image', 'schedule', 'list', a, '--json', ...conn])).out) as Array<{ image: string; paused: boolean; nextRuns: string[]; recentActions: unknown[] }>;
    expect(rows).toMatchObject([{ image: a, paused: false, cron: '0 3 * * 1', timezone: 'Europe/Berlin', recentActions: [{ workflowId: started }] }]);
    expect(rows[0]!.nextRuns).toHaveLength(3);

    const missing = await ekiden(['image', 'schedule', 'pause', b, ...conn]);
    expect(missing.code).toBe(1);
    expect(oneLine(missing)).toBe(`ekiden: image ${b} has no schedule (image-build/${b}); add schedule: to its entry in the fleet file and run \`ekiden image apply\``);
  });

  it('promote and rollback move the current digest; a refusal is one line, exit 1', async () => {
    const [d1, d2, d3] = [DIGEST('1'), DIGEST('2'), DIGEST('3')];
    const handleA = client.workflow.getHandle(imageCatalogWorkflowId(a));
    // Automatic promotion: each green build becomes current.
    await handleA.signal(imageBuiltSignal, record(a, d1, 1));
    await handleA.signal(imageBuiltSignal, record(a, d2, 2));
    await waitUntil(() => catalog(a), (s) => s.current === d2, 15_000, 'a: d2 current');
    const table = await ekiden(['image', 'list', a, ...conn]);
    expect(table.code, table.err).toBe(0);
    const lines = table.out.split('\n');
    expect(lines[0]).toMatch(/^IMAGE +CURRENT +BUILDS +LAST BUILT +FAILURES$/);
    expect(lines[1]).toMatch(new RegExp(`^${a} +sha256:22222222… +2 +2026-12-02T10:00:00Z +0$`));
    expect(table.out).toMatch(new RegExp(`\\n  current +sha256:22222222… +2026-12-02T10:00:00Z +2\\.332\\.0 +1\\.5 GiB +- +- +image-build/${a}/build-2\\n`));
    expect(table.out).toMatch(new RegExp(`\\n  previous +sha256:11111111… +2026-12-01T10:00:00Z +2\\.331\\.0 +1\\.5 GiB +- +- +image-build/${a}/build-1$`));

    const back = await ekiden(['image', 'rollback', a, ...conn]);
    expect(back.code, back.err).toBe(0);
    expect(back.out).toBe(`image ${a}: current ${d1}`);
    const forward = await ekiden(['image', 'promote', a, d2, ...conn]);
    expect(forward.code, forward.err).toBe(0);
    expect(forward.out).toBe(`image ${a}: current ${d2} (before: ${d1})`);

    const unknown = await ekiden(['image', 'promote', a, d3, ...conn]);
    expect(unknown.code).toBe(1);
    expect(oneLine(unknown)).toBe(`ekiden: image ${a}: refused: image ${a} has no build ${d3}; \`ekiden image list\` shows its builds`);
    expect(unknown.out).toBe('');
    expect((await catalog(a)).current).toBe(d2);

    // Manual promotion: builds are recorded, nothing is current until promoted.
    const handleB = client.workflow.getHandle(imageCatalogWorkflowId(b));
    await handleB.signal(imageBuiltSignal, record(b, d1, 1));
    await handleB.signal(imageBuiltSignal, record(b, d2, 2));
    await waitUntil(() => catalog(b), (s) => s.builds.length === 2, 15_000, 'b: two builds');
    expect((await catalog(b)).current).toBeUndefined();
    const none = await ekiden(['image', 'rollback', b, ...conn]);
    expect(none.code).toBe(1);
    expect(oneLine(none)).toBe(`ekiden: image ${b}: refused: image ${b} has no current build to roll back from`);
    const promoted = await ekiden(['image', 'promote', b, d1, '--json', ...conn]);
    expect(promoted.code, promoted.err).toBe(0);
    expect(JSON.parse(promoted.out)).toMatchObject({ image: b, current: d1, previous: [] });

    const all = JSON.parse((await ekiden(['image', 'list', '--json', ...conn])).out) as Array<{ image: string; status?: ImageCatalogStatus }>;
    const mine = all.filter((row) => row.image === a || row.image === b);
    expect(mine.map((row) => [row.image, row.status?.current, row.status?.builds.map((x) => x.digest)])).toEqual([
      [a, d2, [d2, d1]],
      [b, d1, [d2, d1]],
    ]);

    const gone = await ekiden(['image', 'list', `img-${tag}-zz`, ...conn]);
    expect(gone.code).toBe(1);
    expect(oneLine(gone)).toBe(`ekiden: image img-${tag}-zz has no running catalog (image/img-${tag}-zz); start it with \`ekiden image apply --config FILE img-${tag}-zz\``);
  });

  it('build starts a manual build; --wait follows it and reports its end in one line, exit 1', async () => {
    const fleet = file(`build-${tag}.yaml`, head + IMAGE_ENTRY(a, ', variables: { token: { env: BUILD_TOKEN } }'));
    const r = await ekiden(['image', 'build', a, '--config', fleet], { TEMPORAL_UI_URL: 'http://127.0.0.1:8233/' });
    expect(r.code, r.err).toBe(0);
    const m = new RegExp(`^image ${a}: build (image-build/${a}/\\d{8}t\\d{6}z) started on task queue ${taskQueue}\\n  web UI: http://127\\.0\\.0\\.1:8233/namespaces/default/workflows/(.+)$`).exec(r.out);
    expect(m, r.out).not.toBeNull();
    const id = m![1]!;
    workflows.add(id);
    expect(decodeURIComponent(m![2]!)).toBe(id);
    const handle = client.workflow.getHandle(id);
    const desc = await handle.describe();
    expect(desc.type).toBe('ImageBuildWorkflow');
    expect(desc.taskQueue).toBe(taskQueue);
    await handle.terminate('test over');

    // Followed: its steps as they come; terminated meanwhile, it ends in one line and exit 1.
    const child: ResultPromise = execa(process.execPath, [BIN, 'image', 'build', a, '--config', fleet, '--wait'], { reject: false, env: cleanEnv(), extendEnv: false, cwd: dir });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const followed = await waitUntil(() => /build (image-build\/\S+) started/.exec(out)?.[1], (v) => v !== undefined, 20_000, 'the followed build to start');
    workflows.add(followed!);
    await waitUntil(() => out, (o) => /\] step preparing/.test(o) || /\] waiting for a worker/.test(o), 20_000, 'a step line');
    await client.workflow.getHandle(followed!).terminate('stopped by the test');
    const end = await child;
    expect(end.exitCode, String(end.stderr)).toBe(1);
    expect(oneLine({ code: 1, out, err: String(end.stderr) })).toBe(`ekiden: image ${a}: build ${followed} failed: stopped by the test`);
  });

});
