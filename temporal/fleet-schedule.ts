/**
 * The fleet schedule: one Temporal Schedule per fleet (`fleet/<shared queue>`, core/names.ts)
 * that starts a FleetRoundWorkflow (workflows/fleet.ts) every `intervalMs` on the fleet's
 * shared task queue. Overlap SKIP: a round still running makes the next slot pass; the
 * catch-up window is one interval, so a control plane that was down for a day runs one
 * round when it returns, not a day of them.
 *
 * Made to match by every control-plane worker at start (`ekiden control`, a host with
 * `control: true`, `ekiden up`): created when missing, updated when its interval, action or
 * policies differ, left alone otherwise. A pause by an operator (`temporal schedule toggle
 * --pause`) is kept.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleDescription } from '@temporalio/client';
import { isDeepStrictEqual } from 'node:util';
import { fleetRoundWorkflowId, fleetScheduleId } from '../core/names.js';
import type { FleetRoundInput } from '../workflows/api.js';
import type { FleetRoundWorkflow } from '../workflows/fleet.js';

export const FLEET_ROUND_WORKFLOW = 'FleetRoundWorkflow';

/** The schedule as the server has it, or undefined when there is none. */
export async function scheduleIfAny(client: Client, scheduleId: string): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(scheduleId).describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

export interface FleetScheduleOptions {
  /** One round every this often. */
  intervalMs: number;
  confirmDelayMs?: number;
  /** A host that does not pick up its GC step within this is skipped for the round (default 1 min). */
  hostTimeoutMs?: number;
}

export type FleetScheduleOutcome = { action: 'created' } | { action: 'updated'; changes: string[] } | { action: 'unchanged' };

function desired(taskQueue: string, o: FleetScheduleOptions) {
  const input: FleetRoundInput = { confirmDelayMs: o.confirmDelayMs ?? 5_000, hostTimeoutMs: o.hostTimeoutMs ?? 60_000 };
  return {
    spec: { intervals: [{ every: o.intervalMs }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: FLEET_ROUND_WORKFLOW,
      workflowId: fleetRoundWorkflowId(taskQueue),
      taskQueue,
      args: [input] as [FleetRoundInput],
      // A round that cannot finish (no worker, a stuck host step) ends before the next one is due.
      workflowExecutionTimeout: Math.max(60_000, o.intervalMs * 2),
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(60_000, o.intervalMs) },
  };
}

/** What differs between the schedule as described and as wanted (names of the parts). */
export function fleetScheduleDifferences(desc: ScheduleDescription, taskQueue: string, o: FleetScheduleOptions): string[] {
  const want = desired(taskQueue, o);
  const changes: string[] = [];
  const intervals = desc.spec.intervals ?? [];
  if (intervals.length !== 1 || intervals[0]!.every !== o.intervalMs || (desc.spec.calendars?.length ?? 0) > 0) changes.push('interval');
  if (desc.policies.overlap !== ScheduleOverlapPolicy.SKIP || desc.policies.catchupWindow !== want.policies.catchupWindow) changes.push('policies');
  const a = desc.action;
  if (a.type !== 'startWorkflow' || a.workflowType !== FLEET_ROUND_WORKFLOW || a.workflowId !== want.action.workflowId || a.taskQueue !== taskQueue) {
    changes.push('workflow');
  } else if (!isDeepStrictEqual(a.args, want.action.args) || a.workflowExecutionTimeout !== want.action.workflowExecutionTimeout) {
    changes.push('round settings');
  }
  return changes;
}

/** Makes the fleet schedule of `taskQueue` match `o`: one describe, then at most one create or update. */
export async function ensureFleetSchedule(client: Client, taskQueue: string, o: FleetScheduleOptions): Promise<FleetScheduleOutcome> {
  const scheduleId = fleetScheduleId(taskQueue);
  const handle = client.schedule.getHandle(scheduleId);
  const want = desired(taskQueue, o);
  let desc = await scheduleIfAny(client, scheduleId);
  if (!desc) {
    try {
      await client.schedule.create<typeof FleetRoundWorkflow>({ scheduleId, ...want, state: { note: 'the fleet round: GitHub reconciliation and image-cache GC' } });
      return { action: 'created' };
    } catch (err) {
      // Another control-plane worker created it meanwhile: compare with that one.
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      desc = await handle.describe();
    }
  }
  const changes = fleetScheduleDifferences(desc, taskQueue, o);
  if (changes.length === 0) return { action: 'unchanged' };
  await handle.update((prev) => ({ ...want, state: prev.state }));
  return { action: 'updated', changes };
}
