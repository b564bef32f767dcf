/**
 * bench:fleet's fleet phase, the product path: `--hosts` host workers in this process (ids
 * h01…, each with its own FakeDriver root, announcing `--slots` capacity; only h01 also serves
 * the shared queue), the webhook receiver registered with the emulator, and `--pools`
 * PoolWorkflows spanning every host (size 0, minIdle, max, a label each). Jobs alternate
 * between the pools and reach them as signed `workflow_job` webhooks.
 */
import { randomBytes } from 'node:crypto';
import { hostWorkflowId, poolWorkflowId, runnerWorkflowId, SHARED_TASK_QUEUE } from '../../core/names.js';
import { SA_POOL } from '../../core/search-attributes.js';
import { createWebhookServer, listenOn, WEBHOOK_PATH } from '../../webhooks/server.js';
import { hostStatusQuery, poolStatusQuery, type PoolConfig } from '../../workflows/api.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import { within, type Bench } from './context.js';
import { IMAGE, TIMING, waitWarm, type Infra, type Resources } from './infra.js';
import { runPhase, type JobBook, type PhaseResult } from './phase.js';
import { resolvePoolConfig, resolvePoolTuning } from '../../core/defaults.js';

/** `fleet-a`, `fleet-b`, … */
export const poolNamesFor = (pools: number): string[] => Array.from({ length: pools }, (_, i) => `fleet-${String.fromCharCode(97 + i)}`);
const poolLabels = (name: string) => ['self-hosted', 'fleet', name];

/** Every host worker started, announced and up; the webhook receiver listening; every pool warm. Returns the host ids. */
export async function setUpFleet(bench: Bench, infra: Infra, res: Resources, poolNames: string[]): Promise<string[]> {
  bench.log.stage = 'fleet';
  const hostIds = await startHosts(bench, infra, res);
  await startWebhookReceiver(bench, infra, res);
  await startPools(bench, infra, res, poolNames, hostIds);
  return hostIds;
}

async function startHosts(bench: Bench, infra: Infra, res: Resources): Promise<string[]> {
  const hostIds = Array.from({ length: bench.opts.hosts }, (_, i) => `h${String(i + 1).padStart(2, '0')}`);
  for (const [i, id] of hostIds.entries()) {
    const driver = await infra.newDriver(id);
    res.workers.start(id, await infra.hostWorker(id, driver, { serveShared: i === 0, fleet: true }));
  }
  await within(180_000, 'host workers ready', () => Promise.all(res.workers.live.map((w) => w.worker.ready)));
  for (const id of hostIds) {
    const handle = infra.client.workflow.getHandle(hostWorkflowId(id));
    for (;;) {
      const state = await handle.query(hostStatusQuery).then((s) => s.state, () => 'unknown');
      if (state === 'up') break;
      await bench.pause(100);
    }
  }
  if (res.workers.errors.length > 0) throw new Error(`host workers failed: ${res.workers.errors.join('; ')}`);
  bench.log.say(`fleet: ${bench.opts.hosts} host workers announced and up (only h01 serves the shared queue)`);
  return hostIds;
}

async function startWebhookReceiver(bench: Bench, infra: Infra, res: Resources): Promise<void> {
  const secret = randomBytes(24).toString('hex');
  res.webhookServer = createWebhookServer({ secret, client: infra.client, logger: bench.log.webhook });
  const hookUrl = `${await listenOn(res.webhookServer, 0)}${WEBHOOK_PATH}`;
  infra.emu.webhooks.add({ url: hookUrl, secret });
  bench.log.say(`fleet: webhook receiver at ${hookUrl}, registered with the emulator`);
}

async function startPools(bench: Bench, infra: Infra, res: Resources, poolNames: string[], hostIds: string[]): Promise<void> {
  const { minIdle, max } = bench.opts;
  for (const name of poolNames) {
    const config: PoolConfig = resolvePoolConfig({
      name,
      hosts: hostIds,
      image: IMAGE,
      labels: poolLabels(name),
      runnerGroupId: 1,
      runnerDir: 'actions-runner',
      credential: 'jit',
      size: 0,
      minIdle,
      max,
      timing: TIMING,
    });
    await infra.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
      workflowId: poolWorkflowId(name),
      taskQueue: SHARED_TASK_QUEUE,
      args: [{ config, tuning: resolvePoolTuning() }],
      typedSearchAttributes: [{ key: SA_POOL, value: name }],
    });
    res.poolsStarted = true;
  }
  for (const name of poolNames) await waitWarm(bench, infra.emu, `ekiden-${name}-`, minIdle);
  bench.log.say(`fleet: ${bench.opts.pools} pool(s) started, ${bench.opts.warm} runner(s) warm; queueing jobs`);
}

export function runFleet(bench: Bench, infra: Infra, book: JobBook, poolNames: string[], hostIds: string[]): Promise<PhaseResult> {
  return runPhase(bench, infra, book, {
    name: 'fleet',
    labelsFor: (i) => poolLabels(poolNames[i % bench.opts.pools]!),
    ownsRunner: (id) => poolNames.some((n) => id.startsWith(runnerWorkflowId(n, ''))),
    runnerPrefixes: poolNames.map((n) => `ekiden-${n}-`),
    poolIds: poolNames.map(poolWorkflowId),
    hostIds: hostIds.map(hostWorkflowId),
  });
}

/** Each pool's own counters after the phase, and how the webhook deliveries went. */
export async function reportFleet(bench: Bench, infra: Infra, poolNames: string[]): Promise<void> {
  for (const name of poolNames) {
    const s = await infra.client.workflow.getHandle(poolWorkflowId(name)).query(poolStatusQuery);
    bench.log.say(
      `fleet: pool ${name}: started ${s.started}, completed ${s.completed}, failed ${s.failed}, runs ${s.runs}, ` +
        `now ${s.counts.starting}/${s.counts.idle}/${s.counts.busy}/${s.counts.cleaning} starting/idle/busy/cleaning, pending ${s.pendingJobs}` +
        `${s.blocked ? `, blocked: ${s.blocked}` : ''}${s.recentFailures.length ? `, last failure: ${s.recentFailures.at(-1)!.message}` : ''}`,
    );
  }
  const deliveries = infra.emu.webhooks.deliveries();
  const failedDeliveries = deliveries.filter((d) => d.state === 'failed').length;
  bench.log.say(`fleet: ${deliveries.length} webhook deliveries, ${failedDeliveries} failed, ${deliveries.filter((d) => d.attempts > 1).length} retried`);
}
