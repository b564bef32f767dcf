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
 * - Reconciliation on a schedule: orphan VMs and credentials on the host, orphan GitHub
 *   registrations (offline, named like Ekiden's, owned by no open runner).
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
  proxyActivities,
  setHandler,
  TimeoutFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { FleetHostActivities, FleetSharedActivities } from '../activities/fleet.js';
import { hostTaskQueue } from '../core/names.js';
import {
  acquireSlotUpdate,
  announceHostSignal,
  hostDownSignal,
  hostStatusQuery,
  releaseSlotSignal,
  retireHostSignal,
  type HostAnnouncement,
  type HostLease,
  type HostStatus,
} from './api.js';

export interface HostTiming {
  /** How often a host that is down is pinged. */
  pingIntervalMs: number;
  /** A host whose worker stops heartbeating, then picks up no ping, within this (each) is down. */
  downAfterMs: number;
  /** Length of one watch (a heartbeating activity on the host) while the host is up. */
  watchMs: number;
  /** Reconciliation (orphan VMs, credentials, GitHub runners) every this often. */
  reconcileIntervalMs: number;
  /** Ownership is looked up twice this far apart before anything is removed. */
  confirmDelayMs: number;
  /** Continue-as-new after this many history events. */
  maxHistoryEvents: number;
}

export const DEFAULT_HOST_TIMING: HostTiming = {
  pingIntervalMs: 15_000,
  downAfterMs: 60_000,
  watchMs: 5 * 60_000,
  reconcileIntervalMs: 10 * 60_000,
  confirmDelayMs: 5_000,
  maxHistoryEvents: 2_000,
};

export interface HostWorkflowInput {
  id: string;
  timing?: Partial<HostTiming>;
  /** Carried across continue-as-new. */
  state?: HostStatus;
  lastReconcileAt?: number;
}

/** Leases younger than this are not audited (the runner may not have started yet). */
const LEASE_SETTLE_MS = 60_000;

const ms = (n: number) => `${Math.max(1, Math.round(n))} ms`;

export async function HostWorkflow(input: HostWorkflowInput): Promise<HostStatus> {
  const timing: HostTiming = { ...DEFAULT_HOST_TIMING, ...input.timing };
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

  setHandler(announceHostSignal, (a) => {
    status.announcement = a;
    status.capacity = a.capacity;
    status.lastSeen = Date.now();
    if (status.state !== 'up') log.info('host up', { host: input.id, driver: a.driver, capacity: a.capacity, version: a.version });
    status.state = 'up';
    status.downSince = undefined;
    changed = true;
  });

  setHandler(
    acquireSlotUpdate,
    (req): HostLease => {
      const held = status.leases.find((l) => l.workflowId === req.workflowId);
      if (held) return { ...held };
      const lease: HostLease = { workflowId: req.workflowId, pool: req.pool, since: Date.now() };
      status.leases.push(lease);
      return { ...lease };
    },
    {
      validator: (req) => {
        if (status.leases.some((l) => l.workflowId === req.workflowId)) return;
        if (status.state === 'unknown') throw new Error(`host ${input.id} has not announced itself (is its worker running?)`);
        if (status.state === 'down') throw new Error(`host ${input.id} is down`);
        if (status.state === 'retired') throw new Error(`host ${input.id} is retired`);
        if (status.leases.length >= status.capacity) throw new Error(`host ${input.id} is full (${status.leases.length}/${status.capacity})`);
      },
    },
  );

  setHandler(releaseSlotSignal, ({ workflowId }) => {
    status.leases = status.leases.filter((l) => l.workflowId !== workflowId);
  });
  let watchScope: CancellationScope | undefined;
  setHandler(retireHostSignal, () => {
    retired = true;
    watchScope?.cancel();
    status.state = 'retired';
    changed = true;
  });

  const markDown = async () => {
    if (status.state === 'down') return;
    status.state = 'down';
    status.downSince = Date.now();
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
    const settled = status.leases.filter((l) => l.since < Date.now() - LEASE_SETTLE_MS);
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
      await shared.reconcileGitHub({ confirmDelayMs: timing.confirmDelayMs });
      await audit();
    } catch (err) {
      log.warn('reconciliation failed; next round will retry', { host: input.id, message: err instanceof Error ? err.message : String(err) });
    }
  };

  const answered = (a: HostAnnouncement) => {
    status.announcement = a;
    status.capacity = a.capacity;
    status.lastSeen = Date.now();
    if (status.state === 'down') log.info('host answers again', { host: input.id });
    if (status.state !== 'retired') {
      status.state = 'up';
      status.downSince = undefined;
    }
  };
  const timedOut = (err: unknown) => err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
  const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
  /** One ping; true when the host answered. */
  const pingOnce = async (): Promise<boolean> => {
    try {
      answered(await ping.pingHost());
      return true;
    } catch (err) {
      if (timedOut(err)) await markDown();
      else log.warn('ping failed', { host: input.id, message: message(err) });
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
          log.info('watch ended early', { host: input.id, message: message(err) });
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
      await continueAsNew<typeof HostWorkflow>({ id: input.id, timing: input.timing, state: snapshot(), lastReconcileAt });
    }
    changed = false;
    // An unknown host waits for its first announcement; a down one for the next ping.
    if (status.state === 'unknown') await condition(() => changed);
    else if (pause) await condition(() => changed, ms(timing.pingIntervalMs));
  }
  await condition(allHandlersFinished);
  return snapshot();
}
