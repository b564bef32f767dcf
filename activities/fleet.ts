/**
 * Fleet activities: host slots, host liveness and reconciliation. They talk to Temporal
 * itself (updates on HostWorkflows, visibility queries), so the worker hands them a Client.
 *
 * Ownership is decided one way everywhere: a VM `ekiden-<pool>-<token>-<n>` or a GitHub
 * runner `ekiden-<pool>-<token>` belongs to the open RunnerWorkflow whose run id hashes to
 * `<token>`. Anything whose name does not parse as Ekiden's is never touched.
 */
import { Context, log } from '@temporalio/activity';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { Runtime } from '@temporalio/worker';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { hostWorkflowId, parseRunnerName, parseVmName, runToken } from '../core/names.js';
import { compareText } from '../core/pool-policy.js';
import type { VmDriver } from '../drivers/types.js';
import type { RunnerRegistry } from '../github/runners.js';
import type { CredentialStore } from '../host/credential-store.js';
import type { HostKeyPins } from '../host/host-keys.js';
import { acquireSlotUpdate, hostStatusQuery, type HostAnnouncement, type HostStatus } from '../workflows/api.js';
import { classified } from './failures.js';
import { errorMessage } from '../core/failures.js';

/** The activity logger inside an activity; the process's Runtime logger at worker start. */
function note(msg: string, fields: Record<string, unknown>): void {
  try {
    Context.current();
  } catch {
    Runtime.instance().logger.info(msg, fields);
    return;
  }
  log.info(msg, fields);
}

const OPEN_RUNNERS = "WorkflowType = 'RunnerWorkflow' AND ExecutionStatus = 'Running'";

/** Tokens of every open RunnerWorkflow: what Ekiden currently owns. */
export async function ownedRunnerTokens(client: Client): Promise<Set<string>> {
  const owned = new Set<string>();
  for await (const wf of client.workflow.list({ query: OPEN_RUNNERS })) owned.add(runToken(wf.runId));
  return owned;
}

/**
 * Candidates that stay unowned across two looks at visibility `confirmDelayMs` apart: a
 * runner that started between the listing and the first look is owned by the second.
 */
async function unowned<T>(client: Client, items: T[], tokenOf: (item: T) => string | undefined, confirmDelayMs: number): Promise<T[]> {
  const parsed = items.filter((i) => tokenOf(i) !== undefined);
  if (parsed.length === 0) return [];
  let owned = await ownedRunnerTokens(client);
  let orphans = parsed.filter((i) => !owned.has(tokenOf(i)!));
  if (orphans.length === 0) return [];
  if (confirmDelayMs > 0) await delay(confirmDelayMs);
  owned = await ownedRunnerTokens(client);
  orphans = orphans.filter((i) => !owned.has(tokenOf(i)!));
  return orphans;
}

export interface ReconcileHostResult {
  removedVms: string[];
  removedCredentials: string[];
}

export interface FleetHostDeps {
  client: Client;
  driver: VmDriver;
  credentials: CredentialStore;
  hostKeys: HostKeyPins;
  announcement: () => HostAnnouncement;
}

/** Removes this host's VMs and credential files that no open RunnerWorkflow owns. */
export async function reconcileHostNow(deps: FleetHostDeps, confirmDelayMs: number): Promise<ReconcileHostResult> {
  const vms = await deps.driver.list();
  const orphanVms = await unowned(deps.client, vms, (vm) => parseVmName(vm.name)?.token, confirmDelayMs);
  const removedVms: string[] = [];
  for (const vm of orphanVms) {
    await deps.driver.stop({ name: vm.name, timeoutMs: 10_000 });
    await deps.driver.delete({ name: vm.name });
    await deps.hostKeys.forget(vm.name);
    removedVms.push(vm.name);
  }
  const keys = await deps.credentials.keys();
  const orphanKeys = await unowned(deps.client, keys, (k) => parseRunnerName(k)?.token, confirmDelayMs);
  for (const key of orphanKeys) await deps.credentials.delete(key);
  if (removedVms.length + orphanKeys.length > 0) {
    note('reconciled host', { removedVms, removedCredentials: orphanKeys });
  }
  return { removedVms, removedCredentials: orphanKeys };
}

/** Activities on the host's own queue: they prove the host answers and clean what it holds. */
export function createFleetHostActivities(deps: FleetHostDeps) {
  return {
    async pingHost(): Promise<HostAnnouncement> {
      return deps.announcement();
    },
    /**
     * Runs on the host for `watchMs`, heartbeating every `beatMs`: while it runs the host is
     * alive, at no cost in history. A dead worker shows as a heartbeat timeout.
     */
    async watchHost(args: { watchMs: number; beatMs: number }): Promise<HostAnnouncement> {
      const ctx = Context.current();
      const until = Date.now() + args.watchMs;
      while (Date.now() < until) {
        ctx.heartbeat();
        try {
          await ctx.sleep(Math.min(args.beatMs, Math.max(1, until - Date.now())));
        } catch (err) {
          throw ctx.cancellationSignal.aborted ? (ctx.cancellationSignal.reason as unknown) : err;
        }
      }
      return deps.announcement();
    },
    async reconcileHost(args: { confirmDelayMs: number }): Promise<ReconcileHostResult> {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 1_000);
      try {
        return await classified(() => reconcileHostNow(deps, args.confirmDelayMs));
      } finally {
        clearInterval(beat);
      }
    },
  };
}

export interface FleetSharedDeps {
  client: Client;
  github: RunnerRegistry;
}

export type SlotGrant = { granted: true } | { granted: false; reason: string };

/** Removes GitHub runners named like Ekiden's that are offline and owned by no open RunnerWorkflow. */
export async function reconcileGitHubNow(deps: FleetSharedDeps, confirmDelayMs: number): Promise<string[]> {
  const runners = (await deps.github.listRunners()).filter((r) => r.status === 'offline' && !r.busy);
  const orphans = await unowned(deps.client, runners, (r) => parseRunnerName(r.name)?.token, confirmDelayMs);
  const removed: string[] = [];
  for (const r of orphans) {
    const result = await deps.github.removeRunner(r.id);
    if (result !== 'busy') removed.push(r.name);
  }
  if (removed.length > 0) note('reconciled GitHub runners', { removed });
  return removed;
}

/** Activities any worker may run (shared queue). */
export function createFleetSharedActivities(deps: FleetSharedDeps) {
  return {
    /** Take a VM slot on a host for a runner; a full, down or unknown host says why. */
    async acquireHostSlot(args: { host: string; workflowId: string; pool: string }): Promise<SlotGrant> {
      try {
        await deps.client.workflow
          .getHandle(hostWorkflowId(args.host))
          .executeUpdate(acquireSlotUpdate, { args: [{ workflowId: args.workflowId, pool: args.pool }] });
        return { granted: true };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          return { granted: false, reason: `host ${args.host} has not announced itself (is its worker running?)` };
        }
        if (err instanceof WorkflowUpdateFailedError) {
          return { granted: false, reason: err.cause?.message ?? err.message };
        }
        throw err;
      }
    },
    /** Which of these workflows are closed or do not exist (a missed end signal must not hold a slot). */
    async closedWorkflows(args: { workflowIds: string[] }): Promise<string[]> {
      const closed: string[] = [];
      for (const id of args.workflowIds) {
        try {
          const d = await deps.client.workflow.getHandle(id).describe();
          if (d.status.name !== 'RUNNING') closed.push(id);
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) closed.push(id);
          else throw err;
        }
      }
      return closed;
    },
    async reconcileGitHub(args: { confirmDelayMs: number }): Promise<string[]> {
      return classified(() => reconcileGitHubNow(deps, args.confirmDelayMs));
    },
    /** The fleet's hosts (open HostWorkflows on this task queue) and the state each is in; one that does not answer is `unknown`. */
    async fleetHosts(): Promise<Array<{ id: string; state: HostStatus['state'] }>> {
      const queue = Context.current().info.taskQueue;
      const hosts: Array<{ id: string; state: HostStatus['state'] }> = [];
      for await (const wf of deps.client.workflow.list({ query: `WorkflowType = 'HostWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${queue}'` })) {
        const id = wf.workflowId.replace(/^host\//, '');
        try {
          hosts.push({ id, state: (await deps.client.workflow.getHandle(wf.workflowId).query(hostStatusQuery)).state });
        } catch (err) {
          log.warn('host workflow did not answer its status query', { host: id, message: errorMessage(err) });
          hosts.push({ id, state: 'unknown' });
        }
      }
      return hosts.sort((a, b) => compareText(a.id, b.id));
    },
  };
}

export type FleetHostActivities = ReturnType<typeof createFleetHostActivities>;
export type FleetSharedActivities = ReturnType<typeof createFleetSharedActivities>;

export function localHostname(): string {
  return hostname();
}
