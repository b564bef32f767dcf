/**
 * The rules of a host, as pure functions: its state machine (unknown → up ⇄ down, retired
 * for good) and its slot accounting (never above capacity, never on a host that is not up,
 * idempotent per runner). HostWorkflow (workflows/host.ts) wires these to its messages and
 * activities; test/core/host-policy.test.ts walks every state × event pair. Time is a
 * parameter. Pure module: safe in workflow code.
 */

export type HostState = 'unknown' | 'up' | 'down' | 'retired';
export const HOST_STATES: readonly HostState[] = ['unknown', 'up', 'down', 'retired'];

export type HostEvent =
  /** The worker announced itself at start. */
  | 'announced'
  /** The worker answered a watch or a ping. */
  | 'answered'
  /** A watch or ping was not picked up in time: nobody serves the host's queue. */
  | 'unanswered'
  /** The operator retired the host. */
  | 'retire';
export const HOST_EVENTS: readonly HostEvent[] = ['announced', 'answered', 'unanswered', 'retire'];

export interface HostStep {
  state: HostState;
  /** Tell every runner holding a slot that the host is down (`hostDown`). */
  notifyRunnersDown: boolean;
}

export function hostTransition(state: HostState, event: HostEvent): HostStep {
  const to = (s: HostState, notifyRunnersDown = false): HostStep => ({ state: s, notifyRunnersDown });
  switch (event) {
    case 'announced':
      // A worker (re)starting is the strongest sign of life there is, even on a retired host.
      return to('up');
    case 'answered':
      return to(state === 'retired' ? 'retired' : 'up');
    case 'unanswered':
      if (state === 'retired' || state === 'down') return to(state);
      return to('down', true);
    case 'retire':
      return to('retired');
  }
}

export interface Lease {
  workflowId: string;
  pool: string;
  since: number;
}

export interface SlotBook {
  id: string;
  state: HostState;
  capacity: number;
  leases: readonly Lease[];
}

/** Why a slot cannot be granted, or undefined when it can (a runner that holds one gets it again). */
export function slotRefusal(book: SlotBook, workflowId: string): string | undefined {
  if (book.leases.some((l) => l.workflowId === workflowId)) return undefined;
  if (book.state === 'unknown') return `host ${book.id} has not announced itself (is its worker running?)`;
  if (book.state === 'down') return `host ${book.id} is down`;
  if (book.state === 'retired') return `host ${book.id} is retired`;
  if (book.leases.length >= book.capacity) return `host ${book.id} is full (${book.leases.length}/${book.capacity})`;
  return undefined;
}

/** Grant a slot (call only when slotRefusal said none): the runner's existing lease, or a new one. */
export function grantSlot(leases: readonly Lease[], req: { workflowId: string; pool: string }, now: number): { leases: Lease[]; lease: Lease } {
  const held = leases.find((l) => l.workflowId === req.workflowId);
  if (held) return { leases: [...leases], lease: held };
  const lease: Lease = { workflowId: req.workflowId, pool: req.pool, since: now };
  return { leases: [...leases, lease], lease };
}

export function releaseSlot(leases: readonly Lease[], workflowId: string): Lease[] {
  return leases.filter((l) => l.workflowId !== workflowId);
}

/** A lease is taken just before its runner starts: only leases older than this are audited. */
export const LEASE_SETTLE_MS = 60_000;

/** Leases old enough that a closed workflow behind them means a slot was never given back. */
export function settledLeases(leases: readonly Lease[], now: number): Lease[] {
  return leases.filter((l) => l.since < now - LEASE_SETTLE_MS);
}
