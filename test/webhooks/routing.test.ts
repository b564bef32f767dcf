/**
 * The receiver's pure pieces, without Temporal: label matching and pool choice, the pool
 * listing cache (with a stand-in client), the bounded LRU, and payload parsing.
 */
import type { Client } from '@temporalio/client';
import { resolvePoolConfig } from '../../core/defaults.js';
import { describe, expect, it } from 'vitest';
import type { PoolStatus } from '../../workflows/api.js';
import { silentLogger } from '../../webhooks/log.js';
import { LruMap } from '../../webhooks/lru.js';
import { parseWorkflowJob, PayloadError } from '../../webhooks/payload.js';
import { matchingPools, pickPool, PoolDirectory, type PoolInfo } from '../../webhooks/pools.js';

function pool(name: string, labels: string[], max: number, active = 0, draining = false): PoolInfo {
  return { name, workflowId: `pool/${name}`, labels, max, active, draining };
}

function status(name: string, labels: string[], max: number, busy = 0): PoolStatus {
  return {
    pool: name,
    config: resolvePoolConfig({ name, hosts: [], image: 'i', labels, runnerGroupId: 1, runnerDir: 'r', credential: 'jit', size: 0, minIdle: 0, max }),
    draining: false,
    target: busy,
    counts: { starting: 0, idle: 0, busy, cleaning: 0 },
    retiring: 0,
    runners: [],
    pendingJobs: 0,
    started: 0,
    completed: 0,
    failed: 0,
    consecutiveFailures: 0,
    recentFailures: [],
    runs: 1,
  };
}

/** Just enough of a Temporal Client for PoolDirectory, counting its calls. */
function fakeClient(pools: Map<string, PoolStatus | Error>) {
  const calls = { list: 0, query: 0 };
  const client = {
    withDeadline: <R>(_d: number, fn: () => Promise<R>) => fn(),
    workflow: {
      list: () => {
        calls.list++;
        return (async function* () {
          for (const id of pools.keys()) yield { workflowId: id };
          yield { workflowId: 'not-a-pool' };
        })();
      },
      getHandle: (id: string) => ({
        query: async () => {
          calls.query++;
          const s = pools.get(id);
          if (s instanceof Error) throw s;
          return s;
        },
      }),
    },
  };
  return { client: client as unknown as Client, calls };
}

describe('pool matching', () => {
  const pools = [pool('a', ['self-hosted', 'Linux', 'x64'], 4, 1), pool('b', ['self-hosted', 'linux', 'GPU'], 4, 3), pool('c', ['macos'], 2)];

  it('needs every job label on the pool, case-insensitively', () => {
    expect(matchingPools(pools, ['self-hosted', 'linux']).map((p) => p.name)).toEqual(['a', 'b']);
    expect(matchingPools(pools, ['SELF-HOSTED', 'gpu']).map((p) => p.name)).toEqual(['b']);
    expect(matchingPools(pools, ['self-hosted', 'arm64'])).toEqual([]);
    expect(matchingPools(pools, ['ubuntu-latest'])).toEqual([]);
    expect(matchingPools(pools, [])).toEqual([]);
  });

  it('picks the most free headroom, ties by name', () => {
    expect(pickPool(matchingPools(pools, ['linux']))?.name).toBe('a');
    expect(pickPool([pool('z', ['l'], 3), pool('y', ['l'], 3), pool('x', ['l'], 4, 1)])?.name).toBe('x');
    expect(pickPool([pool('full', ['l'], 1, 3), pool('fuller', ['l'], 1, 5)])?.name).toBe('full');
    expect(pickPool([])).toBeUndefined();
  });
});

describe('PoolDirectory', () => {
  it('lists once per cache window, and only pool/<name> workflows', async () => {
    let now = 1_000;
    const { client, calls } = fakeClient(new Map([['pool/a', status('a', ['l'], 2)]]));
    const dir = new PoolDirectory({ client, cacheMs: 5_000, logger: silentLogger, now: () => now });
    const [first, second] = await Promise.all([dir.pools(), dir.pools()]);
    expect(first).toEqual([pool('a', ['l'], 2)]);
    expect(second).toBe(first);
    expect(calls).toEqual({ list: 1, query: 1 });
    now += 4_000;
    await dir.pools();
    expect(calls.list).toBe(1);
    now += 2_000;
    await dir.pools();
    expect(calls.list).toBe(2);
    await dir.pools(0);
    expect(calls.list).toBe(3);
  });

  it('spreads a burst over pools before the next refresh', async () => {
    const { client } = fakeClient(
      new Map([
        ['pool/a', status('a', ['l'], 3)],
        ['pool/b', status('b', ['l'], 3)],
      ]),
    );
    const dir = new PoolDirectory({ client, cacheMs: 60_000, logger: silentLogger });
    const picks: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = pickPool(matchingPools(await dir.pools(), ['l']))!;
      dir.noteRouted(p.workflowId);
      picks.push(p.name);
    }
    expect(picks).toEqual(['a', 'b', 'a', 'b']);
  });

  it('keeps the last known status of a pool that cannot answer, and skips one never seen', async () => {
    let now = 0;
    const pools = new Map<string, PoolStatus | Error>([['pool/a', status('a', ['l'], 2)]]);
    const { client } = fakeClient(pools);
    const dir = new PoolDirectory({ client, cacheMs: 10, logger: silentLogger, now: () => now });
    expect((await dir.pools()).map((p) => p.name)).toEqual(['a']);
    pools.set('pool/a', new Error('no worker'));
    pools.set('pool/b', new Error('no worker'));
    now += 100;
    expect((await dir.pools()).map((p) => p.name)).toEqual(['a']);
  });
});

describe('LruMap', () => {
  it('forgets the least recently used entry beyond its capacity', () => {
    const m = new LruMap<string, number>(2);
    m.set('a', 1).set('b', 2);
    expect(m.get('a')).toBe(1);
    m.set('c', 3);
    expect(m.has('b')).toBe(false);
    expect(m.has('a')).toBe(true);
    expect(m.size).toBe(2);
  });
});

describe('parseWorkflowJob', () => {
  it('takes action, job id, labels and runner name', () => {
    expect(
      parseWorkflowJob({ action: 'in_progress', workflow_job: { id: 42, labels: ['self-hosted'], runner_name: 'ekiden-a-abc1234' }, repository: { full_name: 'o/r' } }),
    ).toEqual({ action: 'in_progress', jobId: '42', labels: ['self-hosted'], runnerName: 'ekiden-a-abc1234', repo: 'o/r' });
    expect(parseWorkflowJob({ action: 'queued', workflow_job: { id: 1, labels: [], runner_name: null } })).toEqual({ action: 'queued', jobId: '1', labels: [] });
  });

  it('names the bad field', () => {
    const bad: Array<[unknown, RegExp]> = [
      [[], /JSON object/],
      [{}, /action/],
      [{ action: 'deleted', workflow_job: {} }, /action: "deleted"/],
      [{ action: 'queued' }, /workflow_job:/],
      [{ action: 'queued', workflow_job: { id: '1', labels: [] } }, /workflow_job.id/],
      [{ action: 'queued', workflow_job: { id: 1, labels: [3] } }, /workflow_job.labels/],
      [{ action: 'queued', workflow_job: { id: 1, labels: [], runner_name: 5 } }, /runner_name/],
    ];
    for (const [body, message] of bad) {
      expect(() => parseWorkflowJob(body)).toThrow(PayloadError);
      expect(() => parseWorkflowJob(body)).toThrow(message);
    }
  });
});
