/**
 * The receiver's handler against a stand-in Temporal client, without a server: a Temporal
 * call that never settles still gets its delivery a 503 within the budget (and the call is
 * aborted), a failure that is not Temporal's is a 500, not "could not reach Temporal", and a
 * job no answering pool fits is not declared unmatched while a listed pool is silent.
 */
import { ServiceError, type Client } from '@temporalio/client';
import { resolvePoolConfig } from '../../core/defaults.js';
import type { PoolStatus } from '../../workflows/api.js';
import { createHmac, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import type { LogFields, WebhookLogger } from '../../webhooks/log.js';
import { closeServer, createWebhookServer, HEALTH_PATH, listenOn, WEBHOOK_PATH } from '../../webhooks/server.js';
import { TemporalCalls } from '../../webhooks/temporal.js';

const SECRET = 'handler-test-secret';

interface Stub {
  client: Client;
  signals: AbortSignal[];
}

/** Just enough of a Client for the receiver: `list` and `describeNamespace` do what `behave` says. */
function stubClient(behave: () => Promise<never>): Stub {
  const signals: AbortSignal[] = [];
  const client = {
    options: { namespace: 'default' },
    withDeadline: <R>(_deadline: number, fn: () => Promise<R>) => fn(),
    withAbortSignal: <R>(signal: AbortSignal, fn: () => Promise<R>) => {
      signals.push(signal);
      return fn();
    },
    workflow: {
      list: () => ({
        [Symbol.asyncIterator]: () => ({ next: behave }),
      }),
    },
    workflowService: { describeNamespace: behave },
  };
  return { client: client as unknown as Client, signals };
}

const never = () => new Promise<never>(() => {});

function poolStatus(name: string, labels: string[]): PoolStatus {
  return {
    pool: name,
    config: resolvePoolConfig({ name, hosts: [], image: 'i', labels, runnerGroupId: 1, runnerDir: 'r', credential: 'jit', size: 0, minIdle: 0, max: 2 }),
    draining: false,
    target: 0,
    counts: { starting: 0, idle: 0, busy: 0, cleaning: 0 },
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

/** A Client whose listing holds `pools` (a status, or the error its query fails with); signals are recorded. */
function poolsClient(pools: Map<string, PoolStatus | Error>): { client: Client; signalled: string[] } {
  const signalled: string[] = [];
  const client = {
    options: { namespace: 'default' },
    withDeadline: <R>(_deadline: number, fn: () => Promise<R>) => fn(),
    withAbortSignal: <R>(_signal: AbortSignal, fn: () => Promise<R>) => fn(),
    workflow: {
      list: async function* () {
        for (const workflowId of pools.keys()) yield { workflowId };
      },
      getHandle: (id: string) => ({
        query: async () => {
          const s = pools.get(id);
          if (s instanceof Error) throw s;
          return s;
        },
        signal: async () => {
          signalled.push(id);
        },
      }),
    },
  };
  return { client: client as unknown as Client, signalled };
}

const lines: Array<{ level: string; msg: string } & LogFields> = [];
const logger: WebhookLogger = {
  info: (msg, f) => lines.push({ level: 'INFO', msg, ...f }),
  warn: (msg, f) => lines.push({ level: 'WARN', msg, ...f }),
  error: (msg, f) => lines.push({ level: 'ERROR', msg, ...f }),
};

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await closeServer(s, 1_000);
  lines.length = 0;
});

async function serve(client: Client, opts: { deliveryTimeoutMs?: number; healthTimeoutMs?: number; calls?: TemporalCalls } = {}): Promise<string> {
  const server = createWebhookServer({ secret: SECRET, client, logger, poolCacheMs: 0, ...opts });
  servers.push(server);
  return listenOn(server, 0);
}

async function deliverQueued(base: string, delivery = randomUUID(), labels = ['self-hosted']): Promise<{ status: number; body: Record<string, unknown> }> {
  const body = JSON.stringify({ action: 'queued', workflow_job: { id: 77, labels } });
  const res = await fetch(`${base}${WEBHOOK_PATH}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'workflow_job',
      'x-github-delivery': delivery,
      'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
    },
    body,
    // Without the bound the answer never comes: fail here, well before the test's own timeout.
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('webhook handler', () => {
  it('answers 503 when Temporal never answers, within the delivery budget, and aborts the calls', async () => {
    const stub = stubClient(never);
    const base = await serve(stub.client, { deliveryTimeoutMs: 300 });
    const res = await deliverQueued(base);
    expect(res.status).toBe(503);
    expect(res.body.message).toBe('Temporal did not answer within 0.3s; redeliver later');
    expect(stub.signals.length).toBeGreaterThan(0);
    expect(stub.signals.every((s) => s.aborted)).toBe(true);
    expect(lines.filter((l) => l.level === 'ERROR').map((l) => l.msg)).toEqual(['delivery failed: Temporal unavailable']);
  });

  it('keeps count of the calls it gave up on until they settle, so the connection is closed after them', async () => {
    let settle: (err: Error) => void = () => {};
    const late = new Promise<never>((_resolve, reject) => {
      settle = reject;
    });
    const calls = new TemporalCalls();
    const base = await serve(stubClient(() => late).client, { deliveryTimeoutMs: 200, calls });
    expect((await deliverQueued(base)).status).toBe(503);
    expect(calls.inFlight).toBe(1);
    expect(await calls.drain(50)).toBe(false);
    settle(new Error('14 UNAVAILABLE: the retry that fired after the answer'));
    expect(await calls.drain(5_000)).toBe(true);
    expect(calls.inFlight).toBe(0);
  });

  it("answers a redelivery that arrives while the first attempt is in flight with that attempt's outcome, not a second attempt", async () => {
    let lists = 0;
    let fail: (err: Error) => void = () => {};
    const late = new Promise<never>((_resolve, reject) => {
      fail = reject;
    });
    const base = await serve(
      stubClient(() => {
        lists++;
        return late;
      }).client,
      // The first attempt ends when the test says so, not by the clock.
      { deliveryTimeoutMs: 60_000 },
    );
    const delivery = randomUUID();
    const first = deliverQueued(base, delivery);
    await waitUntil(() => lists, (n) => n === 1, 5_000, 'the first attempt listing pools');
    const second = deliverQueued(base, delivery);
    await waitUntil(() => lines.some((l) => l.delivery === delivery && /first attempt is in flight/.test(l.msg)), (seen) => seen, 5_000, 'the redelivery waiting');
    fail(new ServiceError('Failed to list workflows'));
    expect((await first).status).toBe(503);
    expect((await second).status).toBe(503);
    expect(lists).toBe(1);
  });

  it('/healthz answers 503 within its budget when Temporal never answers', async () => {
    const base = await serve(stubClient(never).client, { healthTimeoutMs: 300 });
    const res = await fetch(`${base}${HEALTH_PATH}`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ ok: false, temporal: 'unreachable: describing the namespace: no answer from Temporal within 0.3s' });
  });

  it('answers 500, not "could not reach Temporal", when acting fails for another reason, and forgets the delivery', async () => {
    let calls = 0;
    const base = await serve(
      stubClient(() => {
        calls++;
        return Promise.reject(new TypeError('cannot read properties of undefined'));
      }).client,
    );
    const delivery = randomUUID();
    const res = await deliverQueued(base, delivery);
    expect(res.status).toBe(500);
    expect(res.body.message).toBe('internal error; redeliver later');
    expect(lines.filter((l) => l.level === 'ERROR')).toEqual([expect.objectContaining({ msg: 'delivery failed', delivery, reason: 'cannot read properties of undefined' })]);
    // Not remembered: the redelivery is acted on again, not acknowledged as a duplicate.
    const again = await deliverQueued(base, delivery);
    expect(again.status).toBe(500);
    expect(calls).toBe(2);
  });

  it('answers 503, not "no pool matches", when no answering pool fits and a listed pool never answered', async () => {
    const { client, signalled } = poolsClient(
      new Map<string, PoolStatus | Error>([
        ['pool/linux', poolStatus('linux', ['self-hosted', 'linux'])],
        ['pool/silent', new Error('query timed out: no worker')],
      ]),
    );
    const base = await serve(client);
    const delivery = randomUUID();
    const gpu = await deliverQueued(base, delivery, ['self-hosted', 'gpu']);
    expect(gpu.status).toBe(503);
    expect(gpu.body.message).toBe('pool silent did not answer its status query; the job may be its; redeliver later');
    // Not remembered as handled: the redelivery gets the same honest answer, not "duplicate".
    expect((await deliverQueued(base, delivery, ['self-hosted', 'gpu'])).body.duplicate).toBeUndefined();
    // A job an answering pool fits goes there.
    const linux = await deliverQueued(base, randomUUID(), ['self-hosted', 'linux']);
    expect(linux).toMatchObject({ status: 200, body: { pools: ['linux'] } });
    expect(signalled).toEqual(['pool/linux']);
  });
});
