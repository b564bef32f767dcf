/**
 * `ekiden image apply|build|list|promote|rollback|schedule …`: the image catalog of the fleet
 * file (`images:`, `registry:`; config/images.ts). Each image is an ImageCatalogWorkflow
 * `image/<name>` (its builds and the current digest) and, when its entry has `schedule:`, a
 * Temporal Schedule `image-build/<name>` starting ImageBuildWorkflow runs (cli/image-schedule.ts).
 *
 * - `apply` makes Temporal match the file: every catalog runs (started when missing, a
 *   running one is left alone), every schedule is created, updated only where it differs, or
 *   deleted when the entry (or the image) lost it. Running it twice changes nothing.
 * - `build NAME` starts one build `image-build/<name>/<UTC time>`; `--wait` follows its steps
 *   (the build's status query, the Packer step from its activity's heartbeats) to the result.
 * - `list` shows each catalog: current digest, builds, last failure.
 * - `promote` / `rollback` are the catalog's updates; a refusal changes nothing (exit 1).
 * - `schedule pause|resume|trigger|list` act on the schedules.
 *
 * Arguments and the file are checked completely first (exit 2, one line, nothing contacted);
 * a failed call is one line, exit 1 (cli/command.ts).
 */
import {
  WorkflowFailedError,
  WorkflowIdConflictPolicy,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ImageProgressDetails } from '../activities/images.js';
import { imageBuildSpec } from '../config/image-build-spec.js';
import type { ImageSpec, RegistrySettings } from '../config/images.js';
import { imageBuildWorkflowId, imageCatalogWorkflowId, imageScheduleId, isSlug } from '../core/names.js';
import type { ImageCatalogWorkflow } from '../workflows/image-catalog.js';
import {
  imageBuildStatusQuery,
  imageStatusQuery,
  poolStatusQuery,
  promoteImageUpdate,
  rollbackImageUpdate,
  type ImageBuildRecord,
  type ImageBuildStatus,
  type ImageCatalogStatus,
} from '../workflows/api.js';
import { commonOf, helpText, loadFleet, parse, type Common } from './args.js';
import { runOperatorCommand } from './command.js';
import { CliError, firstLine, HelpRequest, UsageError } from './errors.js';
import {
  applySchedule,
  changeSchedule,
  desiredSchedule,
  IMAGE_BUILD_WORKFLOW,
  pruneSchedules,
  readSchedules,
  type ImageBuildWorkflowFn,
  type ScheduleOutcome,
  type ScheduleRow,
  type ScheduleVerb,
} from './image-schedule.js';
import { json, type CliIo, type Env } from './io.js';
import { runnerUrl } from './runners.js';
import { formatAge, formatTable, tolerant } from './table.js';
import { explain, listOpen, QUERY_TIMEOUT_MS, withTimeout, type TemporalSession } from './temporal.js';
import { UPDATE_TIMEOUT_MS } from './pool.js';

const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** How often `build --wait` asks the build how far it is. */
export const FOLLOW_INTERVAL_MS = 1_000;

const COMMON = '[--address HOST:PORT] [--namespace NS] [--json]';
const APPLY = 'ekiden image apply --config FILE [NAME...]';
const BUILD = 'ekiden image build NAME --config FILE [--wait]';
const LIST = 'ekiden image list [NAME]';
const PROMOTE = 'ekiden image promote NAME DIGEST';
const ROLLBACK = 'ekiden image rollback NAME';
const SCHEDULE = 'ekiden image schedule pause|resume|trigger NAME';
const SCHEDULE_LIST = 'ekiden image schedule list [NAME...]';

export const IMAGE_USAGE = [APPLY, BUILD, LIST, PROMOTE, ROLLBACK, SCHEDULE, SCHEDULE_LIST].map((l) => `  ${l}`).join('\n');

const CONFIG_FILE: readonly [string, string] = ['--config FILE', 'the fleet config file: its images, registry and temporal sections; required'];

const HELP = {
  apply: helpText(
    [`${APPLY} ${COMMON}`],
    'Makes Temporal match the file\'s images (all, or the NAMEs given): each image\'s catalog\n' +
      '(ImageCatalogWorkflow image/<name>) runs, and its rebuild schedule (image-build/<name>) is\n' +
      'created, updated where it differs from the file, or deleted when the entry has no schedule:.\n' +
      'Without NAMEs, schedules of images the file no longer has are deleted too. Running it again\n' +
      'changes nothing. The file\'s schedule.paused applies when it changes; a pause or resume by\n' +
      '`ekiden image schedule` survives applies of an unchanged file.',
    [CONFIG_FILE],
  ),
  build: helpText(
    [`${BUILD} ${COMMON}`],
    'Starts one build of image NAME now (ImageBuildWorkflow image-build/<name>/<UTC time>) and prints\n' +
      'its workflow id (and Web UI link when TEMPORAL_UI_URL or the data dir names one). With --wait,\n' +
      'follows it to the end: steps, the Packer step, push progress, then the digest (exit 0) or the\n' +
      'failure (exit 1).',
    [CONFIG_FILE, ['--wait', 'follow the build until it ends']],
  ),
  list: helpText(
    [`${LIST} [--config FILE] ${COMMON}`],
    'Every image catalog (or NAME\'s): the current digest, each recorded build (digest, built at,\n' +
      'runner version, size, current/previous, the hosts holding it — those the last rollout\n' +
      'prefetched it to —, the pools running on it), the last failure and the failures in a row.',
    [],
  ),
  promote: helpText(
    [`${PROMOTE} [--config FILE] ${COMMON}`],
    'Makes a recorded build of NAME current (DIGEST: sha256: and 64 hex digits, as `ekiden image list\n--json` shows it). A digest the catalog does not hold is refused and nothing changes (exit 1).',
    [],
  ),
  rollback: helpText(
    [`${ROLLBACK} [--config FILE] ${COMMON}`],
    'Makes the build that was current before current again. Refused when there is none (exit 1).',
    [],
  ),
  schedule: helpText(
    [`${SCHEDULE} [--config FILE] ${COMMON}`, `${SCHEDULE_LIST} [--config FILE] ${COMMON}`],
    'pause / resume: stop or restart the scheduled rebuilds of NAME; trigger: start one scheduled build\n' +
      'now; list: each image schedule (or NAMEs\'): cron, paused, next runs, recent runs.',
    [],
  ),
};

export const IMAGE_HELP = `usage:
${IMAGE_USAGE}

Verbs: apply, build, list, promote, rollback, schedule; \`ekiden image VERB --help\` describes each.
They take --address HOST:PORT, --namespace NS, --config FILE, --data-dir DIR and --json.`;

type FromFile = { images: ImageSpec[]; registry: RegistrySettings; taskQueue: string };

export type ImageCommand = Common &
  (
    | ({ verb: 'image apply'; all: boolean } & FromFile)
    | { verb: 'image build'; image: ImageSpec; registry: RegistrySettings; taskQueue: string; wait: boolean }
    | { verb: 'image list'; name?: string }
    | { verb: 'image promote'; name: string; digest: string }
    | { verb: 'image rollback'; name: string }
    | { verb: 'image schedule'; action: ScheduleVerb; name: string }
    | { verb: 'image schedule list'; names: string[] }
  );

// ───────────────────────────── arguments ─────────────────────────────

function imageName(what: string, value: string): string {
  if (!isSlug(value)) throw new UsageError(`${what}: "${value}" is not an image name; use 1-31 lower-case letters, digits and single dashes`);
  return value;
}

function names(what: string, positionals: string[], usage: string, count: { min: number; max: number }): string[] {
  if (positionals.length < count.min) throw new UsageError(`${what}: NAME is missing; usage: ${usage}`);
  if (positionals.length > count.max) {
    const extra = positionals.slice(count.max);
    throw new UsageError(`${what}: unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map((p) => `"${p}"`).join(' ')}; usage: ${usage}`);
  }
  return positionals.map((p) => imageName(what, p));
}

function fromFile(what: string, values: { config?: string | boolean }, env: Env, wanted: readonly string[], usage: string) {
  if (typeof values.config !== 'string') throw new UsageError(`${what}: --config FILE is required (the images come from the fleet file); usage: ${usage}`);
  const fleet = loadFleet(values.config, env);
  if (fleet.images.length === 0 || !fleet.registry) throw new UsageError(`${what}: ${values.config} defines no images; add them under images (with registry)`);
  const known = fleet.images.map((i) => i.name);
  for (const n of wanted) if (!known.includes(n)) throw new UsageError(`${what}: no image "${n}" in ${values.config}; images: ${known.join(', ')}`);
  const images = wanted.length ? fleet.images.filter((i) => wanted.includes(i.name)) : fleet.images;
  return { fleet, images, registry: fleet.registry, taskQueue: fleet.temporal.taskQueue };
}

/** The Web UI base when one is known (TEMPORAL_UI_URL, else the data dir's `ekiden up`). */
function uiUrlOf(env: Env, common: Common): string | undefined {
  const given = env.TEMPORAL_UI_URL || common.uiUrl;
  if (!given) return undefined;
  const base = given.replace(/\/+$/, '');
  try {
    const url = new URL(base);
    if ((url.protocol === 'http:' || url.protocol === 'https:') && !url.search && !url.hash) return base;
  } catch {
    // not a URL
  }
  throw new UsageError(`TEMPORAL_UI_URL: "${base}" is not an http(s) URL of the Temporal Web UI; write e.g. http://127.0.0.1:8233`);
}

/** Checks the arguments of `ekiden image …` (and reads any config file); throws UsageError or ConfigError. */
export function parseImageCommand(argv: string[], env: Env): ImageCommand {
  const [verb, ...rest] = argv;
  switch (verb) {
    case '--help':
    case '-h':
    case 'help':
      throw new HelpRequest(IMAGE_HELP);
    case 'apply': {
      const { values, positionals } = parse(rest, {}, 'image apply', HELP.apply);
      const wanted = positionals.map((p) => imageName('image apply', p));
      const { fleet, images, registry, taskQueue } = fromFile('image apply', values, env, wanted, APPLY);
      return { verb: 'image apply', ...commonOf(values, env, fleet), images, registry, taskQueue, all: wanted.length === 0 };
    }
    case 'build': {
      const { values, positionals } = parse(rest, { wait: { type: 'boolean' } }, 'image build', HELP.build);
      const [name] = names('image build', positionals, BUILD, { min: 1, max: 1 });
      const { fleet, images, registry, taskQueue } = fromFile('image build', values, env, [name!], BUILD);
      const common = commonOf(values, env, fleet);
      const uiUrl = uiUrlOf(env, common);
      const cmd: ImageCommand = { verb: 'image build', ...common, image: images[0]!, registry, taskQueue, wait: values.wait === true };
      if (uiUrl) cmd.uiUrl = uiUrl;
      else delete cmd.uiUrl;
      return cmd;
    }
    case 'list': {
      const { values, positionals } = parse(rest, {}, 'image list', HELP.list);
      const [name] = names('image list', positionals, LIST, { min: 0, max: 1 });
      return name === undefined ? { verb: 'image list', ...commonOf(values, env) } : { verb: 'image list', ...commonOf(values, env), name };
    }
    case 'promote': {
      const { values, positionals } = parse(rest, {}, 'image promote', HELP.promote);
      if (positionals[0] !== undefined) imageName('image promote', positionals[0]);
      if (positionals.length < 2) throw new UsageError(`image promote: ${positionals.length === 0 ? 'NAME and DIGEST are' : 'DIGEST is'} missing; usage: ${PROMOTE}`);
      if (positionals.length > 2) throw new UsageError(`image promote: unexpected argument "${positionals[2]}"; usage: ${PROMOTE}`);
      const name = imageName('image promote', positionals[0]!);
      const digest = positionals[1]!;
      if (!DIGEST.test(digest)) throw new UsageError(`image promote: "${digest}" is not a digest; write sha256: and 64 lower-case hex digits (\`ekiden image list ${name} --json\` shows them)`);
      return { verb: 'image promote', ...commonOf(values, env), name, digest };
    }
    case 'rollback': {
      const { values, positionals } = parse(rest, {}, 'image rollback', HELP.rollback);
      const [name] = names('image rollback', positionals, ROLLBACK, { min: 1, max: 1 });
      return { verb: 'image rollback', ...commonOf(values, env), name: name! };
    }
    case 'schedule': {
      const [action, ...more] = rest;
      if (action === '--help' || action === '-h' || action === 'help') throw new HelpRequest(HELP.schedule);
      const { values, positionals } = parse(more, {}, `image schedule ${action ?? ''}`.trim(), HELP.schedule);
      switch (action) {
        case 'pause':
        case 'resume':
        case 'trigger': {
          const [name] = names(`image schedule ${action}`, positionals, `ekiden image schedule ${action} NAME`, { min: 1, max: 1 });
          return { verb: 'image schedule', ...commonOf(values, env), action, name: name! };
        }
        case 'list':
          return { verb: 'image schedule list', ...commonOf(values, env), names: positionals.map((p) => imageName('image schedule list', p)) };
        default:
          if (action === undefined || action.startsWith('-')) throw new UsageError('image schedule: missing verb; use pause, resume, trigger or list (`ekiden image schedule --help`)');
          throw new UsageError(`image schedule: unknown verb "${action}"; use pause, resume, trigger or list`);
      }
    }
    default:
      if (verb === undefined || verb.startsWith('-')) throw new UsageError('image: missing verb; use apply, build, list, promote, rollback or schedule (`ekiden image --help`)');
      throw new UsageError(`image: unknown verb "${verb}"; use apply, build, list, promote, rollback or schedule`);
  }
}

// ───────────────────────────── output helpers ─────────────────────────────

/** `sha256:abcd1234…` for tables; anything else as it is. */
export function shortDigest(digest: string | undefined): string {
  if (digest === undefined) return '-';
  return DIGEST.test(digest) ? `${digest.slice(0, 15)}…` : digest;
}

export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes) || bytes < 0) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** The UTC time stamp slug of a manual build's workflow id: `20261202t172301z`. */
export function buildStamp(now: number): string {
  return new Date(now)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'z')
    .replace(/[-:]/g, '')
    .toLowerCase();
}

function catalogError(name: string, err: unknown, timeoutMs?: number): CliError {
  if (err instanceof WorkflowNotFoundError) {
    return new CliError(`image ${name} has no running catalog (${imageCatalogWorkflowId(name)}); start it with \`ekiden image apply --config FILE ${name}\``);
  }
  if (err instanceof WorkflowUpdateFailedError) return new CliError(`image ${name}: refused: ${firstLine(err.cause ?? err)}`);
  if (timeoutMs !== undefined) return new CliError(`image ${name}: ${explain(err, timeoutMs)}`);
  return new CliError(`image ${name}: ${firstLine(err)}`);
}

// ───────────────────────────── apply ─────────────────────────────

export interface ApplyResult {
  image: string;
  catalog: { workflowId: string; state: 'started' | 'running' };
  schedule: { scheduleId: string } & ScheduleOutcome;
}

async function ensureCatalog(session: TemporalSession, image: ImageSpec, taskQueue: string): Promise<'started' | 'running'> {
  const workflowId = imageCatalogWorkflowId(image.name);
  try {
    const desc = await session.client.workflow.getHandle(workflowId).describe();
    if (desc.status.name === 'RUNNING') return 'running';
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  await session.client.workflow.start<typeof ImageCatalogWorkflow>('ImageCatalogWorkflow', {
    workflowId,
    taskQueue,
    args: [{ image: image.name, keep: image.keep, promote: image.promote }],
    // Another apply that started it a moment ago wins; this one uses it.
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });
  return 'started';
}

function scheduleText(s: ApplyResult['schedule']): string {
  switch (s.action) {
    case 'created':
      return `schedule ${s.scheduleId} created${s.paused ? ' (paused)' : ''}`;
    case 'updated':
      return `schedule ${s.scheduleId} updated (${s.changes.join(', ')})${s.paused ? '; paused' : ''}`;
    case 'unchanged':
      return `schedule ${s.scheduleId} unchanged${s.note ? ` (${s.note})` : s.paused ? ' (paused)' : ''}`;
    case 'deleted':
      return `schedule ${s.scheduleId} deleted (the entry has no schedule:)`;
    case 'none':
      return 'no schedule';
  }
}

async function apply(session: TemporalSession, io: CliIo, cmd: Extract<ImageCommand, { verb: 'image apply' }>): Promise<number> {
  const results: ApplyResult[] = [];
  const pruned: string[] = [];
  const report = () => {
    if (cmd.json) json(io, { images: results, deletedSchedules: pruned.map((image) => ({ image, scheduleId: imageScheduleId(image) })) });
  };
  for (const image of cmd.images) {
    let state: 'started' | 'running';
    let outcome: ScheduleOutcome;
    try {
      state = await ensureCatalog(session, image, cmd.taskQueue);
      outcome = await applySchedule(session.client, image.name, desiredSchedule(image, cmd.registry, cmd.taskQueue));
    } catch (err) {
      report();
      throw new CliError(`image ${image.name}: ${firstLine(err)}${results.length ? ` (applied before it: ${results.map((r) => r.image).join(', ')})` : ''}`);
    }
    const result: ApplyResult = { image: image.name, catalog: { workflowId: imageCatalogWorkflowId(image.name), state }, schedule: { scheduleId: imageScheduleId(image.name), ...outcome } };
    results.push(result);
    if (!cmd.json) io.out(`image ${image.name}: catalog ${result.catalog.workflowId} ${state}; ${scheduleText(result.schedule)}`);
  }
  if (cmd.all) {
    try {
      pruned.push(...(await pruneSchedules(session.client, new Set(cmd.images.map((i) => i.name)), cmd.taskQueue)));
    } catch (err) {
      report();
      throw new CliError(`image apply: removing the schedules of images the file no longer has: ${firstLine(err)}`);
    }
    if (!cmd.json) for (const image of pruned) io.out(`image ${image}: not in the file; schedule ${imageScheduleId(image)} deleted`);
  }
  report();
  return 0;
}

// ───────────────────────────── build ─────────────────────────────

/** What the build's activities heartbeat (activities/images.ts). */
export type BuildProgress = ImageProgressDetails;

/** The newest heartbeat details of the build's pending activities, as `{ packerStep, bytesDone, bytesTotal }`. */
export function heartbeatProgress(raw: Awaited<ReturnType<WorkflowHandle['describe']>>['raw']): BuildProgress {
  const progress: BuildProgress = {};
  for (const activity of raw.pendingActivities ?? []) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    let details: unknown;
    try {
      details = defaultPayloadConverter.fromPayload(payload);
    } catch {
      continue;
    }
    if (typeof details !== 'object' || details === null) continue;
    const d = details as Record<string, unknown>;
    if (typeof d.packerStep === 'string') progress.packerStep = d.packerStep;
    if (typeof d.bytesDone === 'number') progress.bytesDone = d.bytesDone;
    if (typeof d.bytesTotal === 'number') progress.bytesTotal = d.bytesTotal;
  }
  return progress;
}

function progressText(done: number, total: number | undefined): string {
  if (total === undefined || !(total > 0)) return `${formatBytes(done)} pushed`;
  return `${formatBytes(done)} of ${formatBytes(total)} pushed (${Math.min(100, Math.floor((done / total) * 100))}%)`;
}

function builtLine(name: string, r: ImageBuildRecord): string {
  return tolerant(
    () => `image ${name}: built ${r.digest} (runner ${r.runnerVersion}, ${formatBytes(r.bytes)}, ${formatAge(r.durationMs)} on ${r.host}); ${r.ref}`,
    `image ${name}: built (the result has an unexpected shape; see --json)`,
  );
}

/** Follows a build until it closes: the step, Packer step and push progress as they change. */
async function follow(session: TemporalSession, io: CliIo, name: string, handle: WorkflowHandle<ImageBuildWorkflowFn>, taskQueue: string, quiet: boolean): Promise<ImageBuildRecord> {
  const started = io.now();
  const say = (text: string) => {
    if (!quiet) io.out(`[${formatAge(io.now() - started).padStart(6)}] ${text}`);
  };
  let step: string | undefined;
  let packer: string | undefined;
  let bucket = -1;
  let waitingSaid = false;
  for (;;) {
    const desc = await handle.describe();
    if (desc.status.name !== 'RUNNING') break;
    let status: ImageBuildStatus | undefined;
    try {
      status = await withTimeout(session, QUERY_TIMEOUT_MS, () => handle.query(imageBuildStatusQuery));
    } catch (err) {
      if (!waitingSaid && /no answer within/.test(explain(err, QUERY_TIMEOUT_MS))) {
        say(`waiting for a worker on task queue ${taskQueue}`);
        waitingSaid = true;
      }
    }
    const beat = heartbeatProgress(desc.raw);
    if (status && status.step !== step) {
      step = status.step;
      say(`step ${step}${status.host ? ` on ${status.host}` : ''}`);
    }
    const nowPacker = beat.packerStep;
    if (nowPacker !== undefined && nowPacker !== packer) {
      packer = nowPacker;
      say(`packer: ${packer}`);
    }
    const done = beat.bytesDone;
    const total = beat.bytesTotal;
    if (done !== undefined) {
      // One line per tenth of the push (or per change when the total is unknown).
      const b = total && total > 0 ? Math.floor((done / total) * 10) : done;
      if (b !== bucket) {
        bucket = b;
        say(progressText(done, total));
      }
    }
    await new Promise((r) => setTimeout(r, FOLLOW_INTERVAL_MS));
  }
  try {
    return await handle.result();
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const cause = err.cause ? firstLine(err.cause) : firstLine(err);
      throw new CliError(`image ${name}: build ${handle.workflowId} failed: ${cause}`);
    }
    throw new CliError(`image ${name}: build ${handle.workflowId}: ${firstLine(err)}`);
  }
}

async function build(session: TemporalSession, io: CliIo, cmd: Extract<ImageCommand, { verb: 'image build' }>): Promise<number> {
  const name = cmd.image.name;
  const workflowId = imageBuildWorkflowId(name, buildStamp(io.now()));
  let handle: WorkflowHandleWithFirstExecutionRunId<ImageBuildWorkflowFn>;
  try {
    handle = await session.client.workflow.start<ImageBuildWorkflowFn>(IMAGE_BUILD_WORKFLOW, {
      workflowId,
      taskQueue: cmd.taskQueue,
      args: [{ spec: imageBuildSpec(cmd.image, cmd.registry), trigger: 'manual' }],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw new CliError(`image ${name}: a build ${workflowId} started this second already; wait a second and build again`);
    throw new CliError(`image ${name}: cannot start a build: ${firstLine(err)}`);
  }
  const url = cmd.uiUrl ? runnerUrl(cmd.uiUrl, session.target.namespace, workflowId) : undefined;
  const started = { image: name, workflowId, runId: handle.firstExecutionRunId, taskQueue: cmd.taskQueue, ...(url ? { url } : {}) };
  if (!cmd.json) {
    io.out(`image ${name}: build ${workflowId} started on task queue ${cmd.taskQueue}`);
    if (url) io.out(`  web UI: ${url}`);
  }
  if (!cmd.wait) {
    if (cmd.json) json(io, started);
    return 0;
  }
  const record = await follow(session, io, name, handle, cmd.taskQueue, cmd.json);
  if (cmd.json) json(io, { ...started, result: record });
  else io.out(builtLine(name, record));
  return 0;
}

// ───────────────────────────── list ─────────────────────────────

export interface CatalogRow {
  image: string;
  workflowId: string;
  status?: ImageCatalogStatus;
  error?: string;
  /** Per digest of the catalog's builds: hosts holding it (their cache reports, or the last rollout's prefetches) and pools running or starting runners on it. */
  usage?: Record<string, { hosts: string[]; pools: string[] }>;
}

/** Where each digest runs: pools (their current build and their runners'). Pools that do not answer are left out; hosts come from the catalog's rollout. */
async function readUsage(session: TemporalSession): Promise<{ hosts: Map<string, string[]>; pools: Map<string, string[]> }> {
  const hosts = new Map<string, string[]>();
  const pools = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, digest: string | undefined, who: string) => {
    if (!digest) return;
    const list = m.get(digest) ?? [];
    if (!list.includes(who)) m.set(digest, [...list, who]);
  };
  const ask = async <T>(type: string, query: (id: string) => Promise<T>, use: (id: string, s: T) => void) => {
    const infos = await listOpen(session, type);
    await Promise.all(
      infos.map(async (info) => {
        const s = await withTimeout(session, QUERY_TIMEOUT_MS, () => query(info.workflowId)).catch(() => undefined);
        if (s !== undefined) tolerant(() => use(info.workflowId, s), undefined);
      }),
    );
  };
  await Promise.all([
    ask('PoolWorkflow', (id) => session.client.workflow.getHandle(id).query(poolStatusQuery), (_id, s) => {
      add(pools, s.image?.digest, s.pool);
      s.runners.forEach((r) => r.phase !== 'cleaning' && add(pools, r.imageDigest, s.pool));
    }),
  ]);
  return { hosts, pools };
}

function withUsage(rows: CatalogRow[], usage: { hosts: Map<string, string[]>; pools: Map<string, string[]> }): CatalogRow[] {
  return rows.map((r) =>
    r.status
      ? {
          ...r,
          usage: Object.fromEntries(
            r.status.builds.map((b) => {
              // Hosts: what their caches report, and the hosts the last rollout prefetched it to.
              const rolled = r.status!.rollout?.digest === b.digest ? r.status!.rollout.hostsReady : [];
              return [b.digest, { hosts: [...new Set([...(usage.hosts.get(b.digest) ?? []), ...rolled])].sort(), pools: [...(usage.pools.get(b.digest) ?? [])].sort() }];
            }),
          ),
        }
      : r,
  );
}

async function queryCatalog(session: TemporalSession, image: string, workflowId: string, runId?: string): Promise<CatalogRow> {
  try {
    const status = await withTimeout(session, QUERY_TIMEOUT_MS, () => session.client.workflow.getHandle(workflowId, runId).query(imageStatusQuery));
    return { image, workflowId, status };
  } catch (err) {
    return { image, workflowId, error: explain(err, QUERY_TIMEOUT_MS) };
  }
}

/** Every running catalog (through visibility), or NAME's (directly). */
export async function readCatalogs(session: TemporalSession, name?: string): Promise<CatalogRow[]> {
  if (name !== undefined) {
    const workflowId = imageCatalogWorkflowId(name);
    try {
      const desc = await session.client.workflow.getHandle(workflowId).describe();
      if (desc.status.name !== 'RUNNING') throw new WorkflowNotFoundError('completed', workflowId, undefined);
    } catch (err) {
      throw catalogError(name, err);
    }
    return [await queryCatalog(session, name, workflowId)];
  }
  const infos = await listOpen(session, 'ImageCatalogWorkflow');
  return Promise.all(infos.map((info) => queryCatalog(session, info.workflowId.replace(/^image\//, ''), info.workflowId, info.runId)));
}

/** A short list of names for a table cell: up to three, then how many more. */
function nameList(list: string[] | undefined): string {
  if (!list || list.length === 0) return '-';
  return list.length <= 3 ? list.join(',') : `${list.slice(0, 3).join(',')} +${list.length - 3}`;
}

function catalogTable(rows: CatalogRow[]): string {
  if (rows.length === 0) return '(no images; `ekiden image apply --config FILE` starts their catalogs)';
  const summary = formatTable(
    ['IMAGE', 'CURRENT', 'BUILDS', 'LAST BUILT', 'FAILURES'],
    rows.map((r) => {
      const s = r.status;
      if (!s) return [r.image, '?', '', '', `(query failed: ${r.error})`];
      return tolerant(
        () => [r.image, shortDigest(s.current), String(s.builds.length), s.builds[0]?.builtAt ?? '-', s.consecutiveFailures > 0 ? `${s.consecutiveFailures} in a row` : '0'],
        [r.image, '?', '', '', '(unexpected status shape; see --json)'],
      );
    }),
  );
  const details = rows.flatMap((r) => {
    const s = r.status;
    if (!s) return [];
    return tolerant(
      () => {
        const lines: string[] = [];
        if (s.builds.length > 0) {
          const table = formatTable(
            ['', 'DIGEST', 'BUILT AT', 'RUNNER', 'SIZE', 'HOSTS', 'POOLS', 'BUILD'],
            s.builds.map((b) => [
              b.digest === s.current ? 'current' : s.previous.includes(b.digest) ? 'previous' : '',
              shortDigest(b.digest),
              b.builtAt,
              b.runnerVersion,
              formatBytes(b.bytes),
              nameList(r.usage?.[b.digest]?.hosts),
              nameList(r.usage?.[b.digest]?.pools),
              b.buildId,
            ]),
          );
          lines.push(...table.split('\n').map((l) => `  ${l}`.trimEnd()));
        }
        if (s.lastFailure) {
          const since = s.consecutiveFailures > 0 ? `; ${s.consecutiveFailures} in a row${s.failingSince ? ` since ${s.failingSince}` : ''}` : '';
          lines.push(`  last failure ${s.lastFailure.at} (${s.lastFailure.buildId}): ${String(s.lastFailure.message).split('\n')[0]}${since}`);
        }
        return lines.length ? ['', `${r.image}:`, ...lines] : [];
      },
      [],
    );
  });
  return [summary, ...details].join('\n');
}

// ───────────────────────────── promote, rollback ─────────────────────────────

async function move(session: TemporalSession, io: CliIo, cmd: Extract<ImageCommand, { verb: 'image promote' | 'image rollback' }>): Promise<number> {
  const handle = session.client.workflow.getHandle(imageCatalogWorkflowId(cmd.name));
  let status: ImageCatalogStatus;
  try {
    status = await withTimeout(session, UPDATE_TIMEOUT_MS, () =>
      cmd.verb === 'image promote' ? handle.executeUpdate(promoteImageUpdate, { args: [{ digest: cmd.digest }] }) : handle.executeUpdate(rollbackImageUpdate),
    );
  } catch (err) {
    throw catalogError(cmd.name, err, UPDATE_TIMEOUT_MS);
  }
  if (cmd.json) json(io, status);
  else io.out(`image ${cmd.name}: current ${status.current ?? '-'}${status.previous[0] ? ` (before: ${status.previous[0]})` : ''}`);
  return 0;
}

// ───────────────────────────── schedules ─────────────────────────────

function scheduleState(r: ScheduleRow): string {
  return r.paused ? `paused${r.note ? ` (${r.note})` : ''}` : 'active';
}

export function schedulesTable(rows: Array<ScheduleRow | { image: string; scheduleId: string; error: string }>): string {
  if (rows.length === 0) return '(no image schedules)';
  return formatTable(
    ['IMAGE', 'CRON', 'STATE', 'NEXT RUNS', 'LAST RUN', 'RUNNING'],
    rows.map((r) => {
      if ('error' in r) return [r.image, '?', `(${r.error})`, '', '', ''];
      const last = r.recentActions[r.recentActions.length - 1];
      return [
        r.image,
        r.cron ? `${r.cron}${r.timezone ? ` ${r.timezone}` : ''}` : '?',
        scheduleState(r),
        r.paused ? '-' : r.nextRuns.slice(0, 2).join(', ') || '-',
        last ? `${last.takenAt} ${last.workflowId}` : '-',
        r.running.join(', ') || '-',
      ];
    }),
  );
}

async function schedule(session: TemporalSession, io: CliIo, cmd: Extract<ImageCommand, { verb: 'image schedule' }>): Promise<number> {
  const row = await changeSchedule(session.client, cmd.name, cmd.action);
  if (cmd.json) {
    json(io, row);
    return 0;
  }
  switch (cmd.action) {
    case 'pause':
      io.out(`image ${cmd.name}: schedule ${row.scheduleId} paused`);
      break;
    case 'resume':
      io.out(`image ${cmd.name}: schedule ${row.scheduleId} active; next run ${row.nextRuns[0] ?? '-'}`);
      break;
    case 'trigger':
      io.out(`image ${cmd.name}: schedule ${row.scheduleId} triggered; the build starts as ${imageBuildWorkflowId(cmd.name, 'scheduled')}-<time> (\`ekiden image schedule list ${cmd.name}\` shows it)`);
      break;
  }
  return 0;
}

// ───────────────────────────── dispatch ─────────────────────────────

export async function runImageCommand(session: TemporalSession, io: CliIo, cmd: ImageCommand): Promise<number> {
  switch (cmd.verb) {
    case 'image apply':
      return apply(session, io, cmd);
    case 'image build':
      return build(session, io, cmd);
    case 'image list': {
      const [catalogs, usage] = await Promise.all([readCatalogs(session, cmd.name), readUsage(session)]);
      const rows = withUsage(catalogs, usage);
      if (cmd.json) json(io, rows);
      else io.out(catalogTable(rows));
      return 0;
    }
    case 'image promote':
    case 'image rollback':
      return move(session, io, cmd);
    case 'image schedule':
      return schedule(session, io, cmd);
    case 'image schedule list': {
      const rows = await readSchedules(session.client, cmd.names);
      if (cmd.json) json(io, rows);
      else io.out(schedulesTable(rows));
      return 0;
    }
  }
}

/** `ekiden image …`: the exit code, after one-line errors on io.err. */
export function imageCommand(argv: string[], io: CliIo): Promise<number> {
  return runOperatorCommand(io, () => parseImageCommand(argv, io.env), (session, cmd) => runImageCommand(session, io, cmd));
}
