/**
 * The client side of an image's rebuild schedule: the Temporal Schedule `image-build/<name>`
 * (core/names.ts imageScheduleId) that `ekiden image apply` makes match the fleet file's
 * `schedule:` (created, updated, left alone, or deleted when the entry lost its `schedule:` or
 * the file lost the image), and what `ekiden image schedule pause|resume|trigger|list` do to it.
 *
 * Each run starts an ImageBuildWorkflow `image-build/<name>/scheduled-<time>` (Temporal
 * appends the time) with `{ spec, trigger: 'schedule' }` on the fleet's shared task queue;
 * overlap SKIP (a build still running makes the next one wait for the next slot), the file's
 * catch-up window.
 *
 * Idempotence, by comparison, not by blind update: the server turns a cron expression into
 * structured calendars, so the cron (with the time zone and the file's `paused`) as last
 * applied is kept in the action's memo (`ekidenSchedule`) and compared with the file; the
 * action (workflow type, id, task queue, the build spec) and the policies are compared with
 * what describe() returns. Nothing differs: no call that changes anything.
 *
 * `paused:` in the file is applied when the schedule is created and whenever the file's value
 * changes; a pause or resume by `ekiden image schedule` survives later applies of an unchanged
 * file (apply says so).
 */
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleOptionsStartWorkflowAction,
  type ScheduleSpec,
} from '@temporalio/client';
import { isDeepStrictEqual } from 'node:util';
import { scheduleIfAny } from '../temporal/fleet-schedule.js';
import { imageBuildSpec } from '../config/image-build-spec.js';
import type { ImageSpec, RegistrySettings } from '../config/images.js';
import { imageBuildWorkflowId, imageScheduleId } from '../core/names.js';
import type { ImageBuildInput } from '../workflows/api.js';
import type { ImageBuildWorkflow } from '../workflows/image-build.js';
import { CliError, firstLine } from './errors.js';

/** The build workflow's type name (workflows/image-build.ts ImageBuildWorkflow). */
export const IMAGE_BUILD_WORKFLOW = 'ImageBuildWorkflow';
/** Its signature, for typed starts by name. */
export type ImageBuildWorkflowFn = typeof ImageBuildWorkflow;

/** Key of the action memo that records what the file said at the last apply. */
export const SCHEDULE_MEMO_KEY = 'ekidenSchedule';
const SCHEDULE_PREFIX = imageScheduleId('');

export interface AppliedSchedule {
  cron: string;
  timezone?: string;
  paused: boolean;
}

/** The schedule an image's file entry asks for. */
export interface DesiredSchedule {
  image: string;
  scheduleId: string;
  cron: string;
  timezone?: string;
  catchupWindowMs: number;
  paused: boolean;
  taskQueue: string;
  workflowId: string;
  input: ImageBuildInput;
}

export function desiredSchedule(image: ImageSpec, registry: RegistrySettings, taskQueue: string): DesiredSchedule | undefined {
  const s = image.schedule;
  if (!s) return undefined;
  const d: DesiredSchedule = {
    image: image.name,
    scheduleId: imageScheduleId(image.name),
    cron: s.cron,
    catchupWindowMs: s.catchupWindowMs,
    paused: s.paused,
    taskQueue,
    workflowId: imageBuildWorkflowId(image.name, 'scheduled'),
    input: { spec: imageBuildSpec(image, registry), trigger: 'schedule' },
  };
  if (s.timezone !== undefined) d.timezone = s.timezone;
  return d;
}

function applied(d: DesiredSchedule): AppliedSchedule {
  const a: AppliedSchedule = { cron: d.cron, paused: d.paused };
  if (d.timezone !== undefined) a.timezone = d.timezone;
  return a;
}

function action(d: DesiredSchedule): ScheduleOptionsStartWorkflowAction<ImageBuildWorkflowFn> {
  return {
    type: 'startWorkflow',
    workflowType: IMAGE_BUILD_WORKFLOW,
    workflowId: d.workflowId,
    taskQueue: d.taskQueue,
    args: [d.input],
    memo: { [SCHEDULE_MEMO_KEY]: applied(d) },
  };
}

function spec(d: DesiredSchedule): ScheduleSpec {
  const s: ScheduleSpec = { cronExpressions: [d.cron] };
  if (d.timezone !== undefined) s.timezone = d.timezone;
  return s;
}

/** What the last apply recorded in the schedule's action, if it is Ekiden's. */
export function appliedOf(desc: ScheduleDescription): AppliedSchedule | undefined {
  const m = desc.action.memo?.[SCHEDULE_MEMO_KEY] as Partial<AppliedSchedule> | undefined;
  if (!m || typeof m.cron !== 'string' || typeof m.paused !== 'boolean') return undefined;
  return m as AppliedSchedule;
}

/** What differs between the schedule as described and as the file wants it (names of the parts). */
export function scheduleDifferences(desc: ScheduleDescription, d: DesiredSchedule): string[] {
  const last = appliedOf(desc);
  const changes: string[] = [];
  const calendars = desc.spec.calendars?.length ?? 0;
  const others = (desc.spec.intervals?.length ?? 0) + (desc.spec.skip?.length ?? 0);
  if (!last || last.cron !== d.cron || calendars !== 1 || others > 0) changes.push('cron');
  if ((desc.spec.timezone || undefined) !== d.timezone) changes.push('timezone');
  if (desc.policies.catchupWindow !== d.catchupWindowMs) changes.push('catch-up window');
  if (desc.policies.overlap !== ScheduleOverlapPolicy.SKIP) changes.push('overlap');
  const a = desc.action;
  if (a.workflowType !== IMAGE_BUILD_WORKFLOW || a.workflowId !== d.workflowId) changes.push('workflow');
  if (a.taskQueue !== d.taskQueue) changes.push('task queue');
  // What the data converter would carry: undefined fields gone.
  if (!isDeepStrictEqual(a.args, JSON.parse(JSON.stringify([d.input])))) changes.push('build spec');
  return changes;
}

export type ScheduleOutcome =
  | { action: 'created'; paused: boolean }
  | { action: 'updated'; paused: boolean; changes: string[] }
  | { action: 'unchanged'; paused: boolean; note?: string }
  | { action: 'deleted' }
  | { action: 'none' };

/**
 * Makes the schedule of `image` what `desired` says (undefined: no schedule). One describe,
 * then at most one create, update or delete.
 */
export async function applySchedule(client: Client, image: string, desired: DesiredSchedule | undefined): Promise<ScheduleOutcome> {
  const scheduleId = imageScheduleId(image);
  const handle = client.schedule.getHandle(scheduleId);
  let desc = await scheduleIfAny(client, scheduleId);
  if (!desired) {
    if (!desc) return { action: 'none' };
    try {
      await handle.delete();
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    return { action: 'deleted' };
  }
  if (!desc) {
    try {
      await client.schedule.create({
        scheduleId,
        spec: spec(desired),
        action: action(desired),
        policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: desired.catchupWindowMs },
        state: desired.paused ? { paused: true, note: 'paused in the fleet file' } : { paused: false },
      });
      return { action: 'created', paused: desired.paused };
    } catch (err) {
      // Created meanwhile by another apply: compare with that one.
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      desc = await handle.describe();
    }
  }
  const changes = scheduleDifferences(desc, desired);
  const last = appliedOf(desc);
  // The file's `paused` wins when it changed since the last apply; otherwise the schedule's own state stays.
  const fileChanged = !last || last.paused !== desired.paused;
  const paused = fileChanged ? desired.paused : desc.state.paused;
  if (fileChanged && desc.state.paused !== desired.paused) changes.push(desired.paused ? 'paused' : 'resumed');
  if (changes.length === 0 && !fileChanged) {
    const unchanged: ScheduleOutcome = { action: 'unchanged', paused };
    if (paused !== desired.paused) unchanged.note = `${paused ? 'paused' : 'resumed'} by \`ekiden image schedule\`; the file says ${desired.paused ? 'paused' : 'active'}`;
    return unchanged;
  }
  await handle.update((prev) => {
    const state: { paused: boolean; note?: string; remainingActions?: number } = { paused };
    if (paused) state.note = fileChanged ? 'paused in the fleet file' : (prev.state.note ?? '');
    if (prev.state.remainingActions !== undefined) state.remainingActions = prev.state.remainingActions;
    return {
      spec: spec(desired),
      action: action(desired),
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: desired.catchupWindowMs, pauseOnFailure: prev.policies.pauseOnFailure },
      state,
    };
  });
  // Only the recorded `paused` moved (the schedule already was so): still an update of the record.
  return changes.length === 0 ? { action: 'unchanged', paused } : { action: 'updated', paused, changes };
}

/**
 * Ekiden's image schedules on `taskQueue` whose image is not in `keep` (the file's images):
 * deleted, as the file no longer asks for them. Listed through visibility, so a schedule
 * created a moment ago may be missed until the next apply.
 */
export async function pruneSchedules(client: Client, keep: ReadonlySet<string>, taskQueue: string): Promise<string[]> {
  const gone: string[] = [];
  for await (const summary of client.schedule.list()) {
    if (!summary.scheduleId.startsWith(SCHEDULE_PREFIX)) continue;
    const image = summary.scheduleId.slice(SCHEDULE_PREFIX.length);
    if (keep.has(image) || image.includes('/')) continue;
    const desc = await scheduleIfAny(client, summary.scheduleId);
    if (!desc || desc.action.workflowType !== IMAGE_BUILD_WORKFLOW || desc.action.taskQueue !== taskQueue || !appliedOf(desc)) continue;
    try {
      await client.schedule.getHandle(summary.scheduleId).delete();
      gone.push(image);
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  return gone.sort();
}

// ───────────────────────────── operator verbs ─────────────────────────────

function noSchedule(image: string): CliError {
  return new CliError(`image ${image} has no schedule (${imageScheduleId(image)}); add schedule: to its entry in the fleet file and run \`ekiden image apply\``);
}

async function onSchedule<T>(image: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw noSchedule(image);
    throw new CliError(`image ${image}: schedule ${imageScheduleId(image)}: ${firstLine(err)}`);
  }
}

export type ScheduleVerb = 'pause' | 'resume' | 'trigger';

/** Pauses, resumes or triggers the schedule of `image`; the schedule afterwards. */
export async function changeSchedule(client: Client, image: string, verb: ScheduleVerb): Promise<ScheduleRow> {
  const handle = client.schedule.getHandle(imageScheduleId(image));
  await onSchedule(image, async () => {
    if (verb === 'pause') await handle.pause('paused by `ekiden image schedule pause`');
    else if (verb === 'resume') await handle.unpause('resumed by `ekiden image schedule resume`');
    else await handle.trigger();
  });
  return describeSchedule(client, image);
}

export interface ScheduleRow {
  image: string;
  scheduleId: string;
  cron?: string;
  timezone?: string;
  paused: boolean;
  note?: string;
  /** ISO 8601, the next few. */
  nextRuns: string[];
  /** Newest last. */
  recentActions: Array<{ scheduledAt: string; takenAt: string; workflowId: string }>;
  running: string[];
  actionsTaken: number;
  skippedOverlap: number;
  taskQueue?: string;
}

export function scheduleRow(image: string, desc: ScheduleDescription): ScheduleRow {
  const last = appliedOf(desc);
  const row: ScheduleRow = {
    image,
    scheduleId: desc.scheduleId,
    paused: desc.state.paused,
    nextRuns: desc.info.nextActionTimes.slice(0, 3).map(isoSeconds),
    recentActions: desc.info.recentActions.map((a) => ({ scheduledAt: isoSeconds(a.scheduledAt), takenAt: isoSeconds(a.takenAt), workflowId: a.action.workflow.workflowId })),
    running: desc.info.runningActions.map((a) => a.workflow.workflowId),
    actionsTaken: desc.info.numActionsTaken,
    skippedOverlap: desc.info.numActionsSkippedOverlap,
  };
  if (last) row.cron = last.cron;
  const tz = desc.spec.timezone || last?.timezone;
  if (tz) row.timezone = tz;
  if (desc.state.note) row.note = desc.state.note;
  if (desc.action.taskQueue) row.taskQueue = desc.action.taskQueue;
  return row;
}

export async function describeSchedule(client: Client, image: string): Promise<ScheduleRow> {
  const desc = await onSchedule(image, () => client.schedule.getHandle(imageScheduleId(image)).describe());
  return scheduleRow(image, desc);
}

/** The schedules of `images`, or every image schedule of the namespace (through visibility). */
export async function readSchedules(client: Client, images: readonly string[]): Promise<Array<ScheduleRow | { image: string; scheduleId: string; error: string }>> {
  let names = [...images];
  if (names.length === 0) {
    for await (const summary of client.schedule.list()) {
      const image = summary.scheduleId.slice(SCHEDULE_PREFIX.length);
      if (summary.scheduleId.startsWith(SCHEDULE_PREFIX) && image !== '' && !image.includes('/')) names.push(image);
    }
    names = [...new Set(names)].sort();
  }
  return Promise.all(
    names.map(async (image) => {
      try {
        return await describeSchedule(client, image);
      } catch (err) {
        return { image, scheduleId: imageScheduleId(image), error: firstLine(err) };
      }
    }),
  );
}

/** `2026-12-07T02:00:00Z`. */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
