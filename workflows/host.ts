/**
 * HostWorkflow `host/<id>`: what the fleet knows about one host.
 *
 * - The host's worker announces itself at start (signal-with-start): driver, capacity,
 *   labels, version.
 * - VM slots: pools take a slot per runner with the `acquireSlot` update (validated: never
 *   above capacity, never on a host that is down); the runner gives it back when its VM is
 *   gone. Leases whose workflow closed without giving back are dropped by an audit.
 * - Liveness: a `pingHost` activity on the host's own task queue, the queue every VM step
 *   depends on. When no worker picks it up within `downAfterMs` the host is marked down and
 *   its runners are told (`hostDown`): they deregister on GitHub and end, leaving the VMs
 *   to the host's reconciliation when it returns.
 * - Reconciliation on a schedule: orphan VMs and credentials on the host, and an audit of
 *   its leases. Orphan GitHub registrations are the fleet round's (workflows/fleet.ts), once
 *   per fleet; the round also reports the host's image cache here (`images`).
 * - Continue-as-new keeps all of it.
 */
import {
  ActivityFailure,
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  TimeoutFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { FleetHostActivities, FleetSharedActivities } from '../activities/fleet.js';
import { ms } from '../core/durations.js';
import { errorMessage } from '../core/failures.js';
import { grantSlot, hostTransition, releaseSlot, settledLeases, slotRefusal, type HostEvent } from '../core/host-policy.js';
import { hostTaskQueue } from '../core/names.js';
import {
  acquireSlotUpdate,
  announceHostSignal,
  hostDownSignal,
  hostImagesSignal,
  hostStatusQuery,
  releaseSlotSignal,
  retireHostSignal,
  type HostAnnouncement,
  type HostLease,
  type HostStatus,
  type HostTiming,
  type HostWorkflowInput,
} from './api.js';

/** Patch: GitHub reconciliation moved from every host's round to the fleet round. */
export const GITHUB_ON_FLEET_ROUND = 'github-reconcile-on-fleet-round';

export async function HostWorkflow(input: HostWorkflowInput): Promise<HostStatus> {
  const timing: HostTiming = input.timing;
  const status: HostStatus = input.state ?? { id: input.id, state: 'unknown', capacity: 0, leases: [] };
  let lastReconcileAt = input.lastReconcileAt ?? 0;
  let changed = false;
  let retired = false;

  const hostQueue = hostTaskQueue(input.id);
  const ping = proxyActivities<FleetHostActivities>({
    taskQueue: hostQueue,
    scheduleToStartTimeout: ms(timing.downAfterMs),
    startToCloseTimeout: '10 seconds',
    retry: { maximumAttempts: 1 },
  });
  const watch = proxyActivities<FleetHostActivities>({
    taskQueue: hostQueue,
    scheduleToStartTimeout: ms(timing.downAfterMs),
    startToCloseTimeout: ms(timing.watchMs + timing.downAfterMs),
    heartbeatTimeout: ms(timing.downAfterMs),
    retry: { maximumAttempts: 1 },
  });
  const onHost = proxyActivities<FleetHostActivities>({
    taskQueue: hostQueue,
    scheduleToStartTimeout: ms(timing.downAfterMs),
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 2 },
  });
  const shared = proxyActivities<FleetSharedActivities>({
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '5s', maximumAttempts: 3 },
  });

  const snapshot = (): HostStatus => ({ ...status, leases: status.leases.map((l) => ({ ...l })) });
  setHandler(hostStatusQuery, snapshot);

  /** Move along the host's state machine (core/host-policy.ts); true when its runners must be told it is down. */
  const transition = (event: HostEvent): boolean => {
    const before = status.state;
    const { state, notifyRunnersDown } = hostTransition(before, event);
    status.state = state;
    if (state === 'up') status.downSince = undefined;
    if (state === 'down' && before !== 'down') status.downSince = Date.now();
    return notifyRunnersDown;
  };
  const heard = (a: HostAnnouncement) => {
    status.announcement = a;
    status.capacity = a.capacity;
    status.lastSeen = Date.now();
  };

  setHandler(announceHostSignal, (a) => {
    heard(a);
    if (status.state !== 'up') log.info('host up', { host: input.id, driver: a.driver, capacity: a.capacity, version: a.version });
    transition('announced');
    changed = true;
  });

  setHandler(
    acquireSlotUpdate,
    (req): HostLease => {
      const { leases, lease } = grantSlot(status.leases, req, Date.now());
      status.leases = leases;
      return { ...lease };
    },
    {
      validator: (req) => {
        const refusal = slotRefusal({ id: input.id, state: status.state, capacity: status.capacity, leases: status.leases }, req.workflowId);
        if (refusal) throw new Error(refusal);
      },
    },
  );

  setHandler(hostImagesSignal, (images) => {
    status.images = { ...images, deletedTotal: (status.images?.deletedTotal ?? 0) + images.deleted.length };
  });

  setHandler(releaseSlotSignal, ({ workflowId }) => {
    status.leases = releaseSlot(status.leases, workflowId);
  });
  let watchScope: CancellationScope | undefined;
  setHandler(retireHostSignal, () => {
    retired = true;
    watchScope?.cancel();
    transition('retire');
    changed = true;
  });

  const markDown = async () => {
    if (!transition('unanswered')) return;
    log.warn('host down: its runners clean up on GitHub; VMs wait for reconciliation', { host: input.id, runners: status.leases.length });
    for (const lease of status.leases) {
      try {
        await getExternalWorkflowHandle(lease.workflowId).signal(hostDownSignal);
      } catch {
        // Already closed: the audit drops its lease.
      }
    }
  };

  const audit = async () => {
    // A lease is taken just before its runner starts: only settled leases are checked.
    const settled = settledLeases(status.leases, Date.now());
    if (settled.length === 0) return;
    const closed = new Set(await shared.closedWorkflows({ workflowIds: settled.map((l) => l.workflowId) }));
    if (closed.size > 0) {
      log.info('dropping leases of closed runners', { host: input.id, runners: [...closed] });
      status.leases = status.leases.filter((l) => !closed.has(l.workflowId));
    }
  };

  const reconcile = async () => {
    lastReconcileAt = Date.now();
    try {
      const result = await onHost.reconcileHost({ confirmDelayMs: timing.confirmDelayMs });
      status.lastReconcile = { at: Date.now(), ...result };
      const total = status.reconciled ?? { rounds: 0, vms: 0, credentials: 0 };
      status.reconciled = {
        rounds: total.rounds + 1,
        vms: total.vms + result.removedVms.length,
        credentials: total.credentials + result.removedCredentials.length,
      };
      // GitHub registrations are fleet-wide: the fleet round (workflows/fleet.ts) removes
      // orphans once per fleet; runs from before it existed keep their per-host call.
      if (!patched(GITHUB_ON_FLEET_ROUND)) await shared.reconcileGitHub({ confirmDelayMs: timing.confirmDelayMs });
      await audit();
    } catch (err) {
      log.warn('reconciliation failed; next round will retry', { host: input.id, message: errorMessage(err) });
    }
  };

  const answered = (a: HostAnnouncement) => {
    heard(a);
    if (status.state === 'down') log.info('host answers again', { host: input.id });
    transition('answered');
  };
  const timedOut = (err: unknown) => err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
  /** One ping; true when the host answered. */
  const pingOnce = async (): Promise<boolean> => {
    try {
      answered(await ping.pingHost());
      return true;
    } catch (err) {
      if (timedOut(err)) await markDown();
      else log.warn('ping failed', { host: input.id, message: errorMessage(err) });
      return false;
    }
  };

  while (!retired) {
    let pause = false;
    if (status.state === 'up') {
      if (Date.now() - lastReconcileAt >= timing.reconcileIntervalMs) await reconcile();
      // Watch: a heartbeating activity on the host. When its heartbeats stop, a ping decides:
      // a worker that restarted meanwhile answers it, and the host stays up.
      const watchMs = Math.max(1_000, Math.min(timing.watchMs, lastReconcileAt + timing.reconcileIntervalMs - Date.now()));
      try {
        watchScope = new CancellationScope();
        const beatMs = Math.max(200, Math.floor(timing.downAfterMs / 4));
        answered(await watchScope.run(() => watch.watchHost({ watchMs, beatMs })));
      } catch (err) {
        if (retired && isCancellation(err)) break;
        if (!timedOut(err)) {
          log.info('watch ended early', { host: input.id, message: errorMessage(err) });
          pause = true;
        }
        await pingOnce();
      }
    } else if (status.state === 'down') {
      await pingOnce();
      if (status.state === 'down') {
        await audit();
        pause = true;
      }
    }
    if (retired) break;
    if (workflowInfo().historyLength > timing.maxHistoryEvents || workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof HostWorkflow>({ id: input.id, timing, state: snapshot(), lastReconcileAt });
    }
    changed = false;
    // An unknown host waits for its first announcement; a down one for the next ping.
    if (status.state === 'unknown') await condition(() => changed);
    else if (pause) await condition(() => changed, ms(timing.pingIntervalMs));
  }
  await condition(allHandlersFinished);
  return snapshot();
}
