/**
 * The webhook receiver against the run's real Temporal dev server, with stand-in pools
 * (test/webhooks/fake-pool-workflow.ts, type name `PoolWorkflow`) that record the signals
 * they get: signature checks, body limits, malformed payloads, delivery-id idempotency,
 * routing by labels and headroom, progress to pools and runners, and the GitHub emulator's
 * signed deliveries end to end.
 */
import { waitUntil } from '../support/wait.js';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createHmac, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { runnerName as makeRunnerName, runToken } from '../../core/names.js';
import { SA_RUNNER } from '../../core/search-attributes.js';
import { GitHubEmulator } from '../../emulator/github/server.js';
import type { EmulatorJob } from '../../emulator/github/state.js';
import { workflowJobPayload } from '../../emulator/github/webhooks.js';
import { installRuntime } from '../../workers/logging.js';
import type { WebhookLogger } from '../../webhooks/log.js';
import { closeServer, createWebhookServer, listenOn, WEBHOOK_PATH } from '../../webhooks/server.js';
import { poolStarter, uniq } from './pools-support.js';
import { fakePoolRecordQuery, fakeRunnerJobsQuery, type FakePoolRecord } from './fake-pool-workflow.js';

const SECRET = `whsec-${randomUUID()}`;
const REPO = 'acme/app';
const skip = inject('temporalMissing');

const logLines: string[] = [];
const logger: WebhookLogger = {
  info: (msg, f) => logLines.push(JSON.stringify({ level: 'INFO', msg, ...f })),
  warn: (msg, f) => logLines.push(JSON.stringify({ level: 'WARN', msg, ...f })),
  error: (msg, f) => logLines.push(JSON.stringify({ level: 'ERROR', msg, ...f })),
};

let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;
let worker: Worker;
let workerRun: Promise<void>;
let server: Server;
let smallServer: Server;
let url: string;
let smallUrl: string;
const taskQueue = `webhooks-test-${randomUUID().slice(0, 8)}`;
const handles: WorkflowHandle[] = [];
let jobSeq = 7_000_000 + Math.floor(Math.random() * 1_000_000);

const startPool = poolStarter(() => client, taskQueue, handles);

async function record(handle: WorkflowHandle): Promise<FakePoolRecord> {
  return handle.query(fakePoolRecordQuery);
}

function emulatorJob(labels: string[], overrides: Partial<EmulatorJob> = {}): EmulatorJob {
  const id = ++jobSeq;
  return {
    id,
    run_id: id + 1,
    name: 'build',
    workflow_name: 'CI',
    repo: REPO,
    head_branch: 'main',
    labels,
    status: 'queued',
    conclusion: null,
    runner_id: null,
    runner_name: null,
    runner_group_id: null,
    runner_group_name: null,
    created_at: '2025-01-01T00:00:00Z',
    started_at: null,
    completed_at: null,
    steps: [],
    failure_reason: null,
    ...overrides,
  };
}

function sign(body: string | Buffer, secret = SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function post(
  body: string,
  opts: { signature?: string | null; event?: string; delivery?: string; base?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': opts.event ?? 'workflow_job',
    'x-github-delivery': opts.delivery ?? randomUUID(),
    'user-agent': 'GitHub-Hookshot/test',
  };
  const signature = opts.signature === undefined ? sign(body) : opts.signature;
  if (signature !== null) headers['x-hub-signature-256'] = signature;
  const res = await fetch(`${opts.base ?? url}${WEBHOOK_PATH}`, { method: 'POST', headers, body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function queuedBody(job: EmulatorJob): string {
  return JSON.stringify(workflowJobPayload('queued', job, 'https://api.github.com'));
}

describe.skipIf(skip)('webhook receiver', () => {
  beforeAll(async () => {
    installRuntime({ level: 'WARN', sink: () => {} });
    const address = inject('temporalAddress');
    connection = await Connection.connect({ address });
    nativeConnection = await NativeConnection.connect({ address });
    client = new Client({ connection });
    worker = await Worker.create({
      connection: nativeConnection,
      namespace: 'default',
      taskQueue,
      workflowsPath: fileURLToPath(new URL('./fake-pool-workflow.ts', import.meta.url)),
    });
    workerRun = worker.run();
    // Listing cache off: each test starts its own pools and expects them seen at once.
    server = createWebhookServer({ secret: SECRET, client, logger, poolCacheMs: 0, maxBodyBytes: 64 * 1024 });
    url = await listenOn(server, 0);
    smallServer = createWebhookServer({ secret: SECRET, client, logger, poolCacheMs: 0, maxBodyBytes: 1024 });
    smallUrl = await listenOn(smallServer, 0);
  });

  afterAll(async () => {
    for (const h of handles) await h.terminate('test over').catch(() => undefined);
    if (server) await closeServer(server);
    if (smallServer) await closeServer(smallServer);
    worker?.shutdown();
    await workerRun;
    await connection?.close();
    await nativeConnection?.close();
  });

  it('a validly signed queued job reaches the matching pool exactly once', async () => {
    const label = uniq('wh-one');
    const pool = await startPool({ name: uniq('one'), labels: ['self-hosted', label], max: 3 });
    const job = emulatorJob(['self-hosted', label]);
    const res = await post(queuedBody(job));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ action: 'queued', jobId: String(job.id), pools: [expect.stringMatching(/^one-/)] });
    const got = await waitUntil(() => record(pool), (r) => r.queued.length > 0, 20_000, 'jobQueued');
    expect(got.queued).toEqual([{ jobId: String(job.id), labels: ['self-hosted', label] }]);
    // The receiver never logs the secret or payloads.
    expect(logLines.join('\n')).not.toContain(SECRET);
    expect(logLines.join('\n')).not.toContain('received_events_url');
  });

  it('rejects a bad or missing signature with 401 and signals nothing', async () => {
    const label = uniq('wh-sig');
    const pool = await startPool({ name: uniq('sig'), labels: ['self-hosted', label], max: 3 });
    const forged = emulatorJob(['self-hosted', label]);
    const body = queuedBody(forged);
    const wrongSecret = await post(body, { signature: sign(body, 'not-the-secret') });
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.message).toMatch(/signature/);
    const tampered = await post(body.replace('"build"', '"build2"'), { signature: sign(body) });
    expect(tampered.status).toBe(401);
    const garbage = await post(body, { signature: 'sha256=nothex' });
    expect(garbage.status).toBe(401);
    const missing = await post(body, { signature: null });
    expect(missing.status).toBe(401);
    expect(missing.body.message).toMatch(/X-Hub-Signature-256/);
    // A valid delivery afterwards is the only thing the pool ever saw.
    const real = emulatorJob(['self-hosted', label]);
    expect((await post(queuedBody(real))).status).toBe(200);
    const got = await waitUntil(() => record(pool), (r) => r.queued.length > 0, 20_000, 'jobQueued');
    expect(got.queued.map((q) => q.jobId)).toEqual([String(real.id)]);
  });

  it('refuses an oversized body with 413, declared or streamed', async () => {
    const body = JSON.stringify({ action: 'queued', padding: 'x'.repeat(8 * 1024) });
    const declared = await post(body, { base: smallUrl });
    expect(declared.status).toBe(413);
    const chunks = [body.slice(0, 512), body.slice(512)];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(next));
      },
    });
    const res = await fetch(`${smallUrl}${WEBHOOK_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'workflow_job', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': sign(body) },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
  });

  it('answers 400 to malformed JSON or missing fields, even when signed', async () => {
    const notJson = await post('{"action": "queued", ');
    expect(notJson.status).toBe(400);
    expect(notJson.body.message).toMatch(/JSON/);
    const noJob = await post(JSON.stringify({ action: 'queued' }));
    expect(noJob.status).toBe(400);
    expect(noJob.body.message).toMatch(/workflow_job/);
    const noLabels = await post(JSON.stringify({ action: 'queued', workflow_job: { id: 5 } }));
    expect(noLabels.status).toBe(400);
    expect(noLabels.body.message).toMatch(/labels/);
    const noDelivery = await fetch(`${url}${WEBHOOK_PATH}`, {
      method: 'POST',
      headers: { 'x-github-event': 'workflow_job', 'x-hub-signature-256': sign('{}') },
      body: '{}',
    });
    expect(noDelivery.status).toBe(400);
  });

  it('acts once per delivery id: a redelivery is acknowledged and does nothing', async () => {
    const label = uniq('wh-dup');
    const pool = await startPool({ name: uniq('dup'), labels: ['self-hosted', label], max: 3 });
    const body = queuedBody(emulatorJob(['self-hosted', label]));
    const delivery = randomUUID();
    const first = await post(body, { delivery });
    const [second, third] = await Promise.all([post(body, { delivery }), post(body, { delivery })]);
    expect(first.status).toBe(200);
    expect(first.body.duplicate).toBeUndefined();
    for (const again of [second, third]) {
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ duplicate: true, delivery });
    }
    await waitUntil(() => record(pool), (r) => r.queued.length > 0, 20_000, 'jobQueued');
    // A later, different delivery proves the duplicates left no signal behind.
    const other = emulatorJob(['self-hosted', label]);
    expect((await post(queuedBody(other))).status).toBe(200);
    const got = await waitUntil(() => record(pool), (r) => r.queued.length > 1, 20_000, 'second jobQueued');
    expect(got.queued).toHaveLength(2);
    expect(got.queued[1]!.jobId).toBe(String(other.id));
  });

  it('a job whose labels match no pool gets 202 and starts nothing', async () => {
    const label = uniq('wh-miss');
    const pool = await startPool({ name: uniq('miss'), labels: ['self-hosted', label], max: 3 });
    const res = await post(queuedBody(emulatorJob(['self-hosted', label, 'gpu'])));
    expect(res.status).toBe(202);
    expect(res.body.message).toMatch(/no open pool matches/);
    expect(res.body.pools).toEqual([]);
    const hosted = await post(queuedBody(emulatorJob(['ubuntu-latest'])));
    expect(hosted.status).toBe(202);
    expect((await record(pool)).queued).toEqual([]);
  });

  it('routes by labels (case-insensitively) and, among matches, to the most headroom', async () => {
    const label = uniq('wh-route');
    const linux = await startPool({ name: uniq('linux'), labels: ['self-hosted', label, 'Linux'], max: 4, busy: 3 });
    const gpu = await startPool({ name: uniq('gpu'), labels: ['self-hosted', label, 'linux', 'gpu'], max: 4, busy: 1 });
    const gpuJob = emulatorJob(['self-hosted', label.toUpperCase(), 'GPU']);
    const toGpu = await post(queuedBody(gpuJob));
    expect(toGpu.status).toBe(200);
    const linuxJob = emulatorJob(['self-hosted', label, 'linux']);
    // Both fit; the gpu pool has 3 free, the linux pool 1.
    const toRoomiest = await post(queuedBody(linuxJob));
    expect(toRoomiest.status).toBe(200);
    const gpuGot = await waitUntil(() => record(gpu), (r) => r.queued.length >= 2, 20_000, 'two jobs on the gpu pool');
    expect(gpuGot.queued.map((q) => q.jobId)).toEqual([String(gpuJob.id), String(linuxJob.id)]);
    expect((await record(linux)).queued).toEqual([]);
    // Equal headroom: the name that sorts first wins.
    const tie = uniq('wh-tie');
    const b = await startPool({ name: `${tie}-b`, labels: [tie], max: 2 });
    const a = await startPool({ name: `${tie}-a`, labels: [tie], max: 2 });
    const tieJob = emulatorJob([tie]);
    const res = await post(queuedBody(tieJob));
    expect(res.body.pools).toEqual([`${tie}-a`]);
    await waitUntil(() => record(a), (r) => r.queued.length === 1, 20_000, 'tie job on pool a');
    expect((await record(b)).queued).toEqual([]);
  });

  it('sends progress to the pool that got the job and tells the Ekiden runner its job', async () => {
    const label = uniq('wh-prog');
    const name = uniq('prog');
    const pool = await startPool({ name, labels: ['self-hosted', label], max: 3 });
    const runnerName = makeRunnerName({ pool: name, token: runToken(name) });
    const runner = await client.workflow.start('FakeRunnerWorkflow', {
      taskQueue,
      workflowId: `runner/${name}/1`,
      typedSearchAttributes: [{ key: SA_RUNNER, value: runnerName }],
    });
    handles.push(runner);
    await waitUntil(
      async () => {
        let n = 0;
        for await (const _ of client.workflow.list({ query: `EkidenRunner = '${runnerName}' AND ExecutionStatus = 'Running'` })) n++;
        return n;
      },
      (n) => n === 1,
      20_000,
      'runner visible',
    );
    const job = emulatorJob(['self-hosted', label]);
    expect((await post(queuedBody(job))).status).toBe(200);
    const started = { ...job, status: 'in_progress' as const, runner_id: 9, runner_name: runnerName, runner_group_id: 1, runner_group_name: 'Default', started_at: '2025-01-01T00:00:05Z' };
    const progress = await post(JSON.stringify(workflowJobPayload('in_progress', started, 'https://api.github.com')));
    expect(progress.status).toBe(200);
    expect(progress.body).toMatchObject({ action: 'in_progress', pools: [name], runners: [`runner/${name}/1`] });
    const done = { ...started, status: 'completed' as const, conclusion: 'success' as const, completed_at: '2025-01-01T00:01:00Z' };
    expect((await post(JSON.stringify(workflowJobPayload('completed', done, 'https://api.github.com')))).status).toBe(200);
    const got = await waitUntil(() => record(pool), (r) => r.progress.length === 2, 20_000, 'two progress signals');
    expect(got.progress).toEqual([
      { jobId: String(job.id), action: 'in_progress', runnerName },
      { jobId: String(job.id), action: 'completed', runnerName },
    ]);
    const told = await waitUntil(() => runner.query(fakeRunnerJobsQuery), (j) => j.length >= 1, 20_000, 'jobAssigned');
    expect(told[0]).toBe(String(job.id));
    // A job it never saw queued: progress goes to every pool whose labels fit.
    const stranger = emulatorJob(['self-hosted', label], { status: 'in_progress', runner_name: 'someone-elses-runner', started_at: '2025-01-01T00:00:05Z' });
    const res = await post(JSON.stringify(workflowJobPayload('in_progress', stranger, 'https://api.github.com')));
    expect(res.body).toMatchObject({ pools: [name], runners: [] });
  });

  it('answers ping, ignores other events, and serves only its two paths', async () => {
    expect(await post(JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 }), { event: 'ping' })).toMatchObject({ status: 200, body: { message: 'pong' } });
    const push = await post(JSON.stringify({ ref: 'refs/heads/main' }), { event: 'push' });
    expect(push.status).toBe(202);
    expect((await fetch(`${url}${WEBHOOK_PATH}`)).status).toBe(405);
    expect((await fetch(`${url}/elsewhere`, { method: 'POST', body: '{}' })).status).toBe(404);
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true, temporal: 'ok' });
  });

  it("verifies the emulator's signed deliveries end to end, redelivery included", async () => {
    const label = uniq('wh-emu');
    const pool = await startPool({ name: uniq('emu'), labels: ['self-hosted', label], max: 3 });
    const emu = new GitHubEmulator({ tokens: ['ghp_webhooks_test'], repos: [REPO], webhooks: [{ url: `${url}${WEBHOOK_PATH}`, secret: SECRET }] });
    await emu.start();
    try {
      const job = emu.queueJob({ repo: REPO, labels: ['self-hosted', label], steps: [{ run: 'true' }] });
      const delivery = await emu.webhooks.waitFor((d) => d.jobId === job.id && d.action === 'queued' && d.state !== 'pending');
      expect(delivery).toMatchObject({ event: 'workflow_job', status: 200, state: 'delivered', attempts: 1 });
      const got = await waitUntil(() => record(pool), (r) => r.queued.length > 0, 20_000, 'jobQueued from the emulator');
      expect(got.queued).toEqual([{ jobId: String(job.id), labels: ['self-hosted', label] }]);

      const again = await emu.webhooks.redeliver(delivery.id);
      expect(again).toMatchObject({ id: delivery.id, redelivery: true, status: 200, state: 'delivered' });
      expect(logLines.some((l) => l.includes('duplicate delivery') && l.includes(delivery.id))).toBe(true);

      emu.cancelJob(job.id);
      await emu.webhooks.waitFor((d) => d.jobId === job.id && d.action === 'completed' && d.state !== 'pending');
      const after = await waitUntil(() => record(pool), (r) => r.progress.length > 0, 20_000, 'completed progress');
      expect(after.queued).toHaveLength(1);
      expect(after.progress).toEqual([{ jobId: String(job.id), action: 'completed' }]);
    } finally {
      await emu.stop();
    }
  });
});
