/**
 * The GitHub emulator's webhook deliveries, without Temporal: payloads validate against the
 * `workflow_job` webhooks in GitHub's published OpenAPI description and compile against
 * @octokit/webhooks' types; headers are GitHub's; the signature verifies with
 * @octokit/webhooks; a failed delivery is retried under the same delivery id; redelivery
 * reuses the id, body and signature.
 */
import { Webhooks, type EmitterWebhookEvent } from '@octokit/webhooks';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { validateSchema, type Schema } from '../../emulator/github/json-schema.js';
import { GitHubEmulator } from '../../emulator/github/server.js';
import { HOOKSHOT_USER_AGENT, type WorkflowJobPayload } from '../../emulator/github/webhooks.js';

const SECRET = 'emulator-webhook-secret';
const REPO = 'octo/hello';
const DESCRIPTION = fileURLToPath(new URL('../../node_modules/@octokit/openapi/generated/api.github.com.deref.json', import.meta.url));

interface Received {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

let receiver: Server;
let receiverUrl: string;
const received: Received[] = [];
/** Statuses to answer with, in order; 200 once exhausted. */
const answers: number[] = [];
let webhookOps: Record<string, { parameters: Array<{ name: string; in: string }>; requestBody: { content: { 'application/json': { schema: Schema } } } }>;

beforeAll(async () => {
  webhookOps = Object.fromEntries(
    Object.entries((JSON.parse(readFileSync(DESCRIPTION, 'utf8')) as { 'x-webhooks': Record<string, { post: (typeof webhookOps)[string] }> })['x-webhooks'])
      .filter(([k]) => k.startsWith('workflow-job-'))
      .map(([k, v]) => [k, v.post]),
  );
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(answers.shift() ?? 200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

describe('emulator webhooks', () => {
  it('types its payloads as @octokit/webhooks workflow_job payloads', () => {
    expectTypeOf<WorkflowJobPayload>().toMatchTypeOf<EmitterWebhookEvent<'workflow_job'>['payload']>();
  });

  it('sends signed, GitHub-shaped workflow_job deliveries for queued, in_progress and completed', async () => {
    received.length = 0;
    const emu = new GitHubEmulator({ tokens: ['ghp_x'], repos: [REPO], webhooks: [{ url: receiverUrl, secret: SECRET }] });
    await emu.start();
    try {
      const job = emu.queueJob({ repo: REPO, labels: ['self-hosted', 'linux'], steps: [{ run: 'echo hi' }, { run: 'true', name: 'second' }] });
      emu.cancelJob(job.id);
      await emu.webhooks.idle();
      expect(received).toHaveLength(2);
      const verifier = new Webhooks({ secret: SECRET });
      const actions: string[] = [];
      for (const r of received) {
        const text = r.body.toString('utf8');
        expect(await verifier.verify(text, String(r.headers['x-hub-signature-256']))).toBe(true);
        expect(r.headers['x-github-event']).toBe('workflow_job');
        expect(r.headers['x-github-delivery']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(r.headers['x-github-hook-id']).toMatch(/^\d+$/);
        expect(r.headers['user-agent']).toBe(HOOKSHOT_USER_AGENT);
        expect(r.headers['user-agent']).toMatch(/^GitHub-Hookshot\//);
        expect(r.headers['content-type']).toBe('application/json');
        const payload = JSON.parse(text) as WorkflowJobPayload;
        actions.push(payload.action);
        const op = webhookOps[`workflow-job-${payload.action.replace('_', '-')}`]!;
        for (const p of op.parameters.filter((p) => p.in === 'header')) expect(r.headers[p.name.toLowerCase()], p.name).toBeTruthy();
        expect(validateSchema(op.requestBody.content['application/json'].schema, payload)).toEqual([]);
        expect(payload.workflow_job).toMatchObject({ id: job.id, labels: ['self-hosted', 'linux'], run_id: job.run_id });
        expect(payload.repository.full_name).toBe(REPO);
      }
      expect(actions).toEqual(['queued', 'completed']);
      expect(emu.webhooks.deliveries().map((d) => [d.action, d.status, d.state])).toEqual([
        ['queued', 200, 'delivered'],
        ['completed', 200, 'delivered'],
      ]);
    } finally {
      await emu.stop();
    }
  });

  it('an in_progress payload carries the runner and the steps, and validates', async () => {
    received.length = 0;
    const emu = new GitHubEmulator({ tokens: ['ghp_x'], repos: [REPO] });
    await emu.start();
    try {
      emu.webhooks.add({ url: receiverUrl, secret: SECRET });
      const { workflowJobPayload } = await import('../../emulator/github/webhooks.js');
      const job = emu.queueJob({ repo: REPO, labels: ['self-hosted'], steps: [{ run: 'true' }] });
      const running = { ...job, status: 'in_progress' as const, runner_id: 3, runner_name: 'ekiden-linux-abc1234', runner_group_id: 1, runner_group_name: 'Default', started_at: job.created_at };
      const payload = workflowJobPayload('in_progress', running, emu.url);
      expect(validateSchema(webhookOps['workflow-job-in-progress']!.requestBody.content['application/json'].schema, payload)).toEqual([]);
      expect(payload.workflow_job).toMatchObject({ runner_name: 'ekiden-linux-abc1234', status: 'in_progress' });
      expect(payload.workflow_job.steps).toHaveLength(1);
      await emu.webhooks.idle();
    } finally {
      await emu.stop();
    }
  });

  it('retries a failed delivery under the same id, and redelivers with the same id and signature', async () => {
    received.length = 0;
    answers.push(502, 500);
    const emu = new GitHubEmulator({ tokens: ['ghp_x'], repos: [REPO], webhooks: [{ url: receiverUrl, secret: SECRET }] });
    await emu.start();
    try {
      emu.queueJob({ repo: REPO, labels: ['self-hosted'], steps: [{ run: 'true' }] });
      await emu.webhooks.idle();
      expect(received).toHaveLength(3);
      const ids = new Set(received.map((r) => r.headers['x-github-delivery']));
      expect(ids.size).toBe(1);
      const [delivery] = emu.webhooks.deliveries();
      expect(delivery).toMatchObject({ action: 'queued', attempts: 3, status: 200, state: 'delivered', redelivery: false });

      const again = await emu.webhooks.redeliver(delivery!.id);
      expect(again).toMatchObject({ id: delivery!.id, redelivery: true, attempts: 1, status: 200 });
      expect(received).toHaveLength(4);
      expect(received[3]!.headers['x-github-delivery']).toBe(delivery!.id);
      expect(received[3]!.headers['x-hub-signature-256']).toBe(received[0]!.headers['x-hub-signature-256']);
      expect(received[3]!.body.equals(received[0]!.body)).toBe(true);

      answers.push(500, 500, 500);
      const gaveUp = await emu.webhooks.redeliver(delivery!.id);
      expect(gaveUp).toMatchObject({ attempts: 3, status: 500, state: 'failed' });
      answers.push(404);
      expect(await emu.webhooks.redeliver(delivery!.id)).toMatchObject({ attempts: 1, status: 404, state: 'failed' });
      await expect(emu.webhooks.redeliver('no-such-delivery')).rejects.toThrow(/no delivery/);
    } finally {
      await emu.stop();
    }
  });

  it('records a delivery to an unreachable hook as failed after its retries', async () => {
    const emu = new GitHubEmulator({ tokens: ['ghp_x'], repos: [REPO], webhooks: [{ url: 'http://127.0.0.1:9/nothing', secret: SECRET }] });
    await emu.start();
    try {
      emu.queueJob({ repo: REPO, labels: ['self-hosted'], steps: [{ run: 'true' }] });
      await emu.webhooks.idle();
      expect(emu.webhooks.deliveries()[0]).toMatchObject({ attempts: 3, status: null, state: 'failed' });
      expect(emu.webhooks.deliveries()[0]!.error).toBeTruthy();
    } finally {
      await emu.stop();
    }
  });
});
