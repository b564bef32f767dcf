/**
 * The Temporal server itself is killed with SIGKILL while a runner's job runs, and started
 * again on its database: the worker process rides it out (it does not exit; its polls retry
 * with backoff), the runner finishes its job on the same VM, and nothing is left — no VM,
 * registration or credential — however long the server was gone (a few seconds here: what
 * matters is that every in-flight call failed and had to be retried).
 */
import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startDevServer, type DevServer } from '../../temporal/dev-server.js';
import { runnerStatusQuery } from '../../workflows/api.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { createHarness, REPO, ROOT, TOKEN, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();

describe.skipIf(skip)('Temporal server killed with SIGKILL mid-job', () => {
  let h: Harness;
  let server: DevServer;
  let connection: Connection;
  let client: Client;
  let worker: ChildProcess | undefined;
  const stderr: string[] = [];

  beforeAll(async () => {
    h = await createHarness('srvkill');
    // A server of this test's own (the run's shared one must not die), on a database file.
    server = await startDevServer({ cliPath: inject('temporalCli'), dbFile: join(h.dir, 'temporal.db'), logFile: join(h.dir, 'temporal.log'), ui: false, startTimeoutMs: 120_000 });
    connection = await Connection.connect({ address: server.address });
    client = new Client({ connection });
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await connection?.close().catch(() => {});
    await server?.stop();
    await h?.close();
  });

  it('the worker rides it out, the runner finishes its job and leaves nothing', async () => {
    const config = {
      temporal: { address: server.address, namespace: 'default', taskQueue: h.taskQueue },
      host: { id: h.hostId, dataDir: join(h.dir, 'host'), pollIntervalMs: 200, shutdownGraceMs: 1000 },
      driver: h.driverSettings,
      github: { apiUrl: h.emulatorUrl, scope: `repo:${REPO}`, auth: { tokenEnv: 'EKIDEN_TEST_GITHUB_TOKEN' }, writeSpacingMs: 0 },
    };
    const file = join(h.dir, 'worker.json');
    writeFileSync(file, JSON.stringify(config));
    worker = spawn(process.execPath, [join(ROOT, 'dist/workers/main.js'), '--config', file], {
      env: { ...process.env, EKIDEN_TEST_GITHUB_TOKEN: TOKEN },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    worker.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(...d.split('\n')));

    const handle = await client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: `runner/test/srvkill-${Date.now()}`,
      taskQueue: h.taskQueue,
      args: [{ spec: h.spec(), timing: h.timing() }],
    });
    const phase = async () => (await handle.query(runnerStatusQuery)).phase;
    await waitUntil(phase, (p) => p === 'idle', 60_000, 'runner idle');
    const job = h.emulator.queueJob({ repo: REPO, labels: ['ekiden-test'], steps: [{ run: 'sleep 8; echo survived > proof.txt' }] });
    await waitUntil(phase, (p) => p === 'busy', 60_000, 'runner busy');

    server.kill();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(worker.exitCode, stderr.slice(-20).join('\n')).toBeNull();
    await server.restart();

    const result = await handle.result();
    expect(result.outcome).toBe('completed');
    expect(result.vmNames).toHaveLength(1);
    expect(result.leftovers).toEqual([]);
    expect(h.emulator.jobs().find((j) => j.id === job.id)?.conclusion).toBe('success');
    expect(worker.exitCode).toBeNull();
    await waitUntil(() => h.driver.list(), (l) => l.length === 0, 20_000, 'no VM left');
    expect(h.emulator.runners()).toEqual([]);
    expect(readdirSync(join(h.dir, 'host', 'credentials'))).toEqual([]);
  });
});
