/**
 * The webhook receiver when things go wrong, against the run's real Temporal dev server:
 * form-encoded deliveries (GitHub's default content type for hooks made through its API),
 * Temporal unreachable behind a relay that can play dead (each delivery answered 503 in a few
 * seconds and forgotten, so the redelivery is processed; /healthz says so), and a client that
 * disconnects before its body is complete. The stand-in pools of fake-pool-workflow.ts record
 * the signals they get, so "nothing signalled" is checked, not assumed.
 */
import { waitUntil } from '../support/wait.js';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createHmac, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { EmulatorJob } from '../../emulator/github/state.js';
import { workflowJobPayload } from '../../emulator/github/webhooks.js';
import { installRuntime } from '../../workers/logging.js';
import type { WebhookLogger } from '../../webhooks/log.js';
import { closeServer, createWebhookServer, HEALTH_PATH, listenOn, WEBHOOK_PATH } from '../../webhooks/server.js';
import { TemporalCalls } from '../../webhooks/temporal.js';
import { poolStarter, uniq } from './pools-support.js';
import { fakePoolRecordQuery, type FakePoolRecord } from './fake-pool-workflow.js';

const SECRET = `whsec-${randomUUID()}`;
const FORM = 'application/x-www-form-urlencoded';
const skip = inject('temporalMissing');

interface LogLine {
  level: 'INFO' | 'WARN' | 'ERROR';
  msg: string;
  [field: string]: unknown;
}
const logLines: LogLine[] = [];
const logger: WebhookLogger = {
  info: (msg, f) => logLines.push({ level: 'INFO', msg, ...f }),
  warn: (msg, f) => logLines.push({ level: 'WARN', msg, ...f }),
  error: (msg, f) => logLines.push({ level: 'ERROR', msg, ...f }),
};

/**
 * A TCP relay in front of the dev server. `down()` drops every connection and refuses (closes)
 * new ones, as a stopped server does; `up()` forwards again.
 */
class Relay {
  private readonly sockets = new Set<Socket>();
  private readonly server: TcpServer;
  private serving = true;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createTcpServer((inbound) => {
      this.track(inbound);
      if (!this.serving) {
        inbound.destroy();
        return;
      }
      const outbound = connect(this.target.port, this.target.host);
      this.track(outbound);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.sockets.delete(socket);
      for (const other of this.sockets) if (!this.serving) other.destroy();
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  down(): void {
    this.serving = false;
    for (const s of this.sockets) s.destroy();
  }

  up(): void {
    this.serving = true;
  }

  async close(): Promise<void> {
    this.down();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;
let worker: Worker;
let workerRun: Promise<void>;
let server: Server;
let url: string;
let relay: Relay;
let relayConnection: Connection;
const relayCalls = new TemporalCalls();
let relayServer: Server;
let relayUrl: string;
const taskQueue = `webhooks-faults-${randomUUID().slice(0, 8)}`;
const handles: WorkflowHandle[] = [];
let jobSeq = 8_000_000 + Math.floor(Math.random() * 1_000_000);

const startPool = poolStarter(() => client, taskQueue, handles);

function record(handle: WorkflowHandle): Promise<FakePoolRecord> {
  return handle.query(fakePoolRecordQuery);
}

function job(labels: string[]): EmulatorJob {
  const id = ++jobSeq;
  return {
    id,
    run_id: id + 1,
    name: 'build',
    workflow_name: 'CI',
    repo: 'acme/app',
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
  };
}

function queuedJson(j: EmulatorJob): string {
  return JSON.stringify(workflowJobPayload('queued', j, 'https://api.github.com'));
}

/** As GitHub sends it for content type `form`: the JSON in one `payload` field, `+` for spaces. */
function formBody(json: string): string {
  return new URLSearchParams({ payload: json }).toString();
}

function sign(body: string, secret = SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  ms: number;
}

async function deliver(
  body: string,
  opts: { contentType?: string; signature?: string; delivery?: string; base?: string } = {},
): Promise<Answer> {
  const started = Date.now();
  const res = await fetch(`${opts.base ?? url}${WEBHOOK_PATH}`, {
    method: 'POST',
    headers: {
      'content-type': opts.contentType ?? 'application/json',
      'x-github-event': 'workflow_job',
      'x-github-delivery': opts.delivery ?? randomUUID(),
      'x-hub-signature-256': opts.signature ?? sign(body),
      'user-agent': 'GitHub-Hookshot/test',
    },
    body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, ms: Date.now() - started };
}

async function health(base: string): Promise<Answer> {
  const started = Date.now();
  const res = await fetch(`${base}${HEALTH_PATH}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, ms: Date.now() - started };
}

describe.skipIf(skip)('webhook receiver faults', () => {
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
    server = createWebhookServer({ secret: SECRET, client, logger, poolCacheMs: 0 });
    url = await listenOn(server, 0);
    // The same receiver, reaching Temporal through the relay; the delivery budget is the default one.
    const colon = address.lastIndexOf(':');
    relay = new Relay({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)) });
    relayConnection = await Connection.connect({ address: await relay.start() });
    relayServer = createWebhookServer({ secret: SECRET, client: new Client({ connection: relayConnection }), logger, poolCacheMs: 0, calls: relayCalls });
    relayUrl = await listenOn(relayServer, 0);
  });

  afterAll(async () => {
    for (const h of handles) await h.terminate('test over').catch(() => undefined);
    if (server) await closeServer(server);
    if (relayServer) await closeServer(relayServer);
    // Calls given up on while the relay was down may still have an SDK retry pending.
    await relayCalls.drain(20_000);
    await relayConnection?.close();
    await relay?.close();
    worker?.shutdown();
    await workerRun;
    await connection?.close();
    await nativeConnection?.close();
  });

  describe('form-encoded deliveries', () => {
    it('are accepted: the signature is checked over the form body, the job is the payload field', async () => {
      const label = uniq('wh-form');
      const name = uniq('form');
      const pool = await startPool({ name, labels: ['self-hosted', label], max: 3 });
      const first = job(['self-hosted', label]);
      const body = formBody(queuedJson(first));
      // GitHub's form bodies carry spaces as `+`; the payload has some ("workflow_name": "CI" … ).
      expect(body).toMatch(/^payload=%7B/);
      const res = await deliver(body, { contentType: FORM });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ action: 'queued', jobId: String(first.id), pools: [name] });
      const second = job(['self-hosted', label]);
      const withCharset = await deliver(formBody(queuedJson(second)), { contentType: `${FORM}; charset=utf-8` });
      expect(withCharset.status).toBe(200);
      const got = await waitUntil(() => record(pool), (r) => r.queued.length >= 2, 20_000, 'two form-encoded jobs queued');
      expect(got.queued.map((q) => q.jobId)).toEqual([String(first.id), String(second.id)]);
    });

    it('with a bad signature are 401 and signal nothing, the JSON signed instead of the form body included', async () => {
      const label = uniq('wh-formsig');
      const pool = await startPool({ name: uniq('formsig'), labels: ['self-hosted', label], max: 3 });
      const json = queuedJson(job(['self-hosted', label]));
      const body = formBody(json);
      const overJson = await deliver(body, { contentType: FORM, signature: sign(json) });
      expect(overJson.status).toBe(401);
      expect(overJson.body.message).toMatch(/signature/);
      const wrongSecret = await deliver(body, { contentType: FORM, signature: sign(body, 'not-the-secret') });
      expect(wrongSecret.status).toBe(401);
      const tampered = await deliver(body.replace('build', 'b%75ild'), { contentType: FORM, signature: sign(body) });
      expect(tampered.status).toBe(401);
      // A valid delivery afterwards is the only thing the pool ever saw.
      const real = job(['self-hosted', label]);
      expect((await deliver(formBody(queuedJson(real)), { contentType: FORM })).status).toBe(200);
      const got = await waitUntil(() => record(pool), (r) => r.queued.length > 0, 20_000, 'jobQueued');
      expect(got.queued.map((q) => q.jobId)).toEqual([String(real.id)]);
    });

    it('that are malformed are 400 with the reason, even when signed', async () => {
      const noPayload = await deliver('zen=hi&hook_id=1', { contentType: FORM });
      expect(noPayload.status).toBe(400);
      expect(noPayload.body.message).toMatch(/no payload field/);
      const notJson = await deliver(formBody('{"action": "queued", '), { contentType: FORM });
      expect(notJson.status).toBe(400);
      expect(notJson.body.message).toMatch(/payload field is not JSON/);
      const twice = await deliver(`${formBody('{}')}&${formBody('{}')}`, { contentType: FORM });
      expect(twice.status).toBe(400);
      expect(twice.body.message).toMatch(/payload field.*more than once/);
      const fields = await deliver(formBody(JSON.stringify({ action: 'queued' })), { contentType: FORM });
      expect(fields.status).toBe(400);
      expect(fields.body.message).toMatch(/workflow_job/);
    });

    it('of a content type the receiver cannot read are 415', async () => {
      const res = await deliver(queuedJson(job(['self-hosted'])), { contentType: 'multipart/form-data; boundary=x' });
      expect(res.status).toBe(415);
      expect(res.body.message).toMatch(/application\/json.*application\/x-www-form-urlencoded/);
    });
  });

  describe('with Temporal down', () => {
    it('answers a delivery 503 within a few seconds, forgets it, and processes the redelivery once Temporal is back', async () => {
      const label = uniq('wh-down');
      const name = uniq('down');
      const pool = await startPool({ name, labels: ['self-hosted', label], max: 3 });
      const body = queuedJson(job(['self-hosted', label]));
      const delivery = randomUUID();
      // Reachable first, so the relay's connection is known to work.
      expect((await deliver(queuedJson(job(['self-hosted', uniq('nomatch')])), { base: relayUrl })).status).toBe(202);
      relay.down();
      try {
        const res = await deliver(body, { base: relayUrl, delivery });
        expect(res.status).toBe(503);
        expect(res.body.message).toMatch(/Temporal/);
        // GitHub gives up on a delivery after 10 s; the receiver's budget is 5 s.
        expect(res.ms).toBeLessThan(8_000);
        expect((await record(pool)).queued).toEqual([]);
      } finally {
        relay.up();
      }
      // GitHub's redelivery (same id, same body) is acted on, not acknowledged as a duplicate.
      const again = await waitUntil(() => deliver(body, { base: relayUrl, delivery }), (a) => a.status !== 503, 60_000, 'a redelivery Temporal answers');
      expect(again.status).toBe(200);
      expect(again.body.duplicate).toBeUndefined();
      expect(again.body.pools).toEqual([name]);
      const got = await waitUntil(() => record(pool), (r) => r.queued.length > 0, 20_000, 'jobQueued after redelivery');
      expect(got.queued).toHaveLength(1);
    });

    it('/healthz answers 503 naming Temporal while it is unreachable, 200 when it answers', async () => {
      const ok = await waitUntil(() => health(relayUrl), (a) => a.status === 200, 60_000, 'healthy receiver');
      expect(ok.body).toMatchObject({ ok: true, temporal: 'ok' });
      relay.down();
      try {
        const down = await health(relayUrl);
        expect(down.status).toBe(503);
        expect(down.body.ok).toBe(false);
        expect(down.body.temporal).toMatch(/^unreachable: \S/);
        expect(down.ms).toBeLessThan(8_000);
      } finally {
        relay.up();
      }
      await waitUntil(() => health(relayUrl), (a) => a.status === 200, 60_000, 'healthy again');
      const head = await fetch(`${url}${HEALTH_PATH}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
    });

    it('/healthz answers 503 when Temporal answers but the namespace is not there', async () => {
      const lost = createWebhookServer({ secret: SECRET, client, namespace: 'ekiden-no-such-namespace', logger });
      try {
        const res = await health(await listenOn(lost, 0));
        expect(res.status).toBe(503);
        expect(res.body).toEqual({ ok: false, temporal: 'namespace "ekiden-no-such-namespace" not found' });
      } finally {
        await closeServer(lost);
      }
    });
  });

  it('logs a client that disconnects before its body is complete as such, and signals nothing', async () => {
    const label = uniq('wh-abort');
    const pool = await startPool({ name: uniq('abort'), labels: ['self-hosted', label], max: 3 });
    const body = queuedJson(job(['self-hosted', label]));
    const delivery = randomUUID();
    const { port } = server.address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    // The whole signed JSON, but 100 bytes short of what Content-Length promised; then gone.
    socket.write(
      [
        `POST ${WEBHOOK_PATH} HTTP/1.1`,
        'Host: receiver',
        'Content-Type: application/json',
        `Content-Length: ${Buffer.byteLength(body) + 100}`,
        'X-GitHub-Event: workflow_job',
        `X-GitHub-Delivery: ${delivery}`,
        `X-Hub-Signature-256: ${sign(body)}`,
        '',
        body,
      ].join('\r\n'),
    );
    socket.end();
    const lines = await waitUntil(() => logLines.filter((l) => l.delivery === delivery), (l) => l.length > 0, 10_000, 'a log line about the aborted delivery');
    expect(lines).toEqual([expect.objectContaining({ level: 'WARN', msg: expect.stringMatching(/disconnected before the request body was complete/) })]);
    expect(JSON.stringify(lines)).not.toMatch(/Temporal/);
    socket.destroy();
    // A valid delivery afterwards is the only thing the pool ever saw.
    const real = job(['self-hosted', label]);
    expect((await deliver(queuedJson(real))).status).toBe(200);
    const got = await waitUntil(() => record(pool), (r) => r.queued.length > 0, 20_000, 'jobQueued');
    expect(got.queued.map((q) => q.jobId)).toEqual([String(real.id)]);
  });
});
