/**
 * The host's rules (core/host-policy.ts) as tables: every state × event cell of its state
 * machine, and slot accounting (capacity, state, idempotency, release, lease audit).
 */
import { describe, expect, it } from 'vitest';
import { grantSlot, HOST_EVENTS, HOST_STATES, hostTransition, LEASE_SETTLE_MS, releaseSlot, settledLeases, slotRefusal, type HostState, type Lease } from '../../core/host-policy.js';

// Columns: announced, answered, unanswered, retire → [next state, tell runners it is down]
const TABLE: Record<HostState, Array<[HostState, boolean]>> = {
  unknown: [['up', false], ['up', false], ['down', true], ['retired', false]],
  up: [['up', false], ['up', false], ['down', true], ['retired', false]],
  down: [['up', false], ['up', false], ['down', false], ['retired', false]],
  retired: [['up', false], ['retired', false], ['retired', false], ['retired', false]],
};

describe('host states', () => {
  it('the table covers every state and event', () => {
    expect(Object.keys(TABLE).sort()).toEqual([...HOST_STATES].sort());
    expect(HOST_EVENTS).toEqual(['announced', 'answered', 'unanswered', 'retire']);
  });
  const cells = HOST_STATES.flatMap((s) => HOST_EVENTS.map((e, i) => [s, e, TABLE[s][i]!] as const));
  it.each(cells)('%s + %s → %j', (state, event, [to, notify]) => {
    expect(hostTransition(state, event)).toEqual({ state: to, notifyRunnersDown: notify });
  });
});

describe('slots', () => {
  const lease = (workflowId: string, since = 0): Lease => ({ workflowId, pool: 'p', since });
  const book = (state: HostState, leases: Lease[], capacity = 2) => ({ id: 'mac-1', state, capacity, leases });
  it.each([
    ['up with room', book('up', [lease('a')]), 'b', undefined],
    ['up and full', book('up', [lease('a'), lease('b')]), 'c', 'host mac-1 is full (2/2)'],
    ['full, but the runner already holds one', book('up', [lease('a'), lease('b')]), 'b', undefined],
    ['unknown', book('unknown', []), 'a', 'host mac-1 has not announced itself (is its worker running?)'],
    ['down', book('down', []), 'a', 'host mac-1 is down'],
    ['down, but the runner already holds one', book('down', [lease('a')]), 'a', undefined],
    ['retired', book('retired', []), 'a', 'host mac-1 is retired'],
    ['capacity 0', book('up', [], 0), 'a', 'host mac-1 is full (0/0)'],
  ])('%s', (_why, b, workflowId, want) => {
    expect(slotRefusal(b, workflowId)).toBe(want);
  });
  it('granting is idempotent per runner', () => {
    const first = grantSlot([], { workflowId: 'a', pool: 'p' }, 100);
    expect(first.leases).toEqual([{ workflowId: 'a', pool: 'p', since: 100 }]);
    const again = grantSlot(first.leases, { workflowId: 'a', pool: 'p' }, 200);
    expect(again.leases).toEqual(first.leases);
    expect(again.lease.since).toBe(100);
  });
  it('release is idempotent', () => {
    const leases = [lease('a'), lease('b')];
    expect(releaseSlot(leases, 'a')).toEqual([lease('b')]);
    expect(releaseSlot(releaseSlot(leases, 'a'), 'a')).toEqual([lease('b')]);
  });
  it('only settled leases are audited', () => {
    const now = 1_000_000;
    const leases = [lease('old', now - LEASE_SETTLE_MS - 1), lease('new', now - 1_000)];
    expect(settledLeases(leases, now).map((l) => l.workflowId)).toEqual(['old']);
  });
});
