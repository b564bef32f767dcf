/**
 * A host worker process killed with SIGKILL while its pool's runners wait for jobs: the
 * HostWorkflow marks the host down, the runners deregister on GitHub and end, the pool says
 * why it cannot start more; when the worker returns it removes the orphan VMs at start and
 * the pool fills up again. Nothing is left when the pool is deleted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveHostTiming, resolvePoolTuning } from '../../core/defaults.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { hostWorkflowId, poolWorkflowId } from '../../core/names.js';
import { SA_POOL } from '../../core/search-attributes.js';
import { hostStatusQuery, poolStatusQuery } from '../../workflows/api.js';
import type { HostWorkflow } from '../../workflows/host.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import { createHarness, REPO, ROOT, TOKEN, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();

describe.skipIf(skip)('host worker killed with SIGKILL', () => {
  let h: Harness;
  let child: ChildProcess | undefined;
  const stderr: string[] = [];

  beforeAll(async () => {
    h = await createHarness('hostkill');
    // Workflows and GitHub calls on an in-process worker; the host's VM work in a separate process.
    await h.startWorker({ serveHost: false, fleet: {} });
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await h?.close();
  });

  function startHostProcess(): ChildProcess {
    const config = {
      temporal: { address: inject('temporalAddress'), namespace: 'default', taskQueue: h.taskQueue },
      host: { id: h.hostId, dataDir: join(h.dir, 'host'), pollIntervalMs: 200, shutdownGraceMs: 1000, capacity: 2, labels: ['linux'], control: false },
      driver: h.driverSettings,
      github: { apiUrl: h.emulatorUrl, scope: `repo:${REPO}`, auth: { tokenEnv: 'EKIDEN_TEST_GITHUB_TOKEN' }, writeSpacingMs: 0 },
    };
    const file = join(h.dir, `worker-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify(config));
    const proc = spawn(process.execPath, [join(ROOT, 'dist/workers/main.js'), '--config', file], {
      env: { ...process.env, EKIDEN_TEST_GITHUB_TOKEN: TOKEN },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(...d.split('\n')));
    return proc;
  }

  it('the pool notices, GitHub registrations go, and the returning worker removes its orphan VMs', async () => {
    // The host's workflow with test timing (a worker's announcement then only signals it).
    const host = await h.client.workflow.start<typeof HostWorkflow>('HostWorkflow', {
      workflowId: hostWorkflowId(h.hostId),
      taskQueue: h.taskQueue,
      args: [{ id: h.hostId, timing: resolveHostTiming({ pingIntervalMs: 500, downAfterMs: 3_000, confirmDelayMs: 200, reconcileIntervalMs: 60 * 60_000 }) }],
    });
    child = startHostProcess();
    await waitUntil(() => host.query(hostStatusQuery), (s) => s.state === 'up', 60_000, 'host up');

    const name = `hk-${Date.now().toString(36).slice(-5)}`;
    const config = h.poolConfig(name, { size: 2, max: 2, backoff: { initialMs: 500, maxMs: 2_000 } });
    const pool = await h.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
      workflowId: poolWorkflowId(name),
      taskQueue: h.taskQueue,
      args: [{ config, tuning: resolvePoolTuning({ hostRetryMs: 500 }) }],
      typedSearchAttributes: [{ key: SA_POOL, value: name }],
    });
    const registrations = () => h.emulator.runners().filter((r) => r.name.startsWith(`ekiden-${name}-`));
    await waitUntil(() => pool.query(poolStatusQuery), (s) => s.counts.idle === 2, 60_000, 'two idle runners');
    const firstVms = (await h.driver.list()).map((v) => v.name);
    expect(firstVms).toHaveLength(2);
    expect(registrations()).toHaveLength(2);

    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await exited;

    await waitUntil(() => host.query(hostStatusQuery), (s) => s.state === 'down', 30_000, 'host marked down');
    await waitUntil(() => registrations(), (r) => r.length === 0, 60_000, 'registrations removed while the host is down');
    const blocked = await waitUntil(() => pool.query(poolStatusQuery), (s) => s.runners.length === 0 && (s.blocked ?? '').includes('down'), 60_000, 'pool blocked');
    expect(blocked.blocked).toContain(`host ${h.hostId} is down`);
    // The VMs are still there: nobody could reach the host to delete them.
    expect((await h.driver.list()).map((v) => v.name).sort()).toEqual([...firstVms].sort());

    child = startHostProcess();
    await waitUntil(() => host.query(hostStatusQuery), (s) => s.state === 'up', 60_000, 'host up again');
    await waitUntil(() => h.driver.list(), (l) => !l.some((v) => firstVms.includes(v.name)), 30_000, 'orphan VMs removed');
    // The returning worker removed them itself, at start.
    const reconciledAtStart = () =>
      stderr.filter((l) => l.includes('"reconciled at start"')).map((l) => (JSON.parse(l) as { removedVms: string[] }).removedVms);
    await waitUntil(reconciledAtStart, (r) => r.length === 2, 10_000, 'second worker reconciled');
    expect(reconciledAtStart()[1]!.sort()).toEqual([...firstVms].sort());
    await waitUntil(() => pool.query(poolStatusQuery), (s) => s.counts.idle === 2, 60_000, 'pool refilled');
    expect(registrations()).toHaveLength(2);

    await pool.cancel();
    await pool.result().catch(() => {});
    expect(await h.driver.list()).toEqual([]);
    await waitUntil(() => registrations(), (r) => r.length === 0, 20_000, 'no registrations');
    await waitUntil(() => host.query(hostStatusQuery), (s) => s.leases.length === 0, 20_000, 'no leases');
  });
});
