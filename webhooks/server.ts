/**
 * The GitHub webhook receiver: `POST /webhooks/github` checks the delivery's
 * `X-Hub-Signature-256` over the raw body bytes, acts once per `X-GitHub-Delivery`, and
 * hands `workflow_job` events to the router (demand scaling); `GET /healthz` answers ok.
 * Built on node:http. Never logs the secret or payloads.
 */
import { Webhooks } from '@octokit/webhooks';
import { Client } from '@temporalio/client';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LruMap } from './lru.js';
import type { WebhookLogger } from './log.js';
import { parseWorkflowJob, PayloadError } from './payload.js';
import { PoolDirectory } from './pools.js';
import { JobRouter } from './router.js';
import { errorMessage } from '../core/failures.js';

export const WEBHOOK_PATH = '/webhooks/github';
export const HEALTH_PATH = '/healthz';
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

export interface WebhookServerOptions {
  /** The webhook's secret, as configured on GitHub. */
  secret: string;
  client: Client;
  /** Namespace of the pools, when not the client's own. */
  namespace?: string;
  /** Default 1 MiB (GitHub caps payloads at 25 MB; workflow_job ones are a few KB). */
  maxBodyBytes?: number;
  logger: WebhookLogger;
  /** How long the pool listing is reused. Default 5000. */
  poolCacheMs?: number;
  /** Recent delivery ids remembered. Default 10000. */
  deliveryMemory?: number;
  /** Budget for the Temporal calls of one delivery. Default 15000. */
  deliveryTimeoutMs?: number;
}

type Reply = { status: number; body: Record<string, unknown>; headers?: Record<string, string> };

class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads the body, refusing (413) as soon as it outgrows `limit`. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(header(req, 'content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, `body over the ${limit}-byte limit`, { connection: 'close' }));
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(new HttpError(413, `body over the ${limit}-byte limit`, { connection: 'close' }));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

export interface WebhookHandler {
  (req: IncomingMessage, res: ServerResponse): void;
}

/** The request handler on its own (to mount in another server). */
export function createWebhookHandler(opts: WebhookServerOptions): WebhookHandler {
  if (!opts.secret) throw new Error('webhook secret is empty');
  const limit = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const logger = opts.logger;
  const client =
    opts.namespace !== undefined && opts.namespace !== opts.client.options.namespace
      ? new Client({ connection: opts.client.connection, namespace: opts.namespace })
      : opts.client;
  const webhooks = new Webhooks({ secret: opts.secret });
  const directory = new PoolDirectory({ client, cacheMs: opts.poolCacheMs, logger });
  const router = new JobRouter({ client, directory, logger });
  const deliveryTimeoutMs = opts.deliveryTimeoutMs ?? 15_000;
  /** Delivery id → the outcome of acting on it (in flight or done). Failures are forgotten. */
  const deliveries = new LruMap<string, Promise<Reply>>(opts.deliveryMemory ?? 10_000);

  async function verified(req: IncomingMessage): Promise<Buffer> {
    const signature = header(req, 'x-hub-signature-256');
    if (!signature) throw new HttpError(401, 'missing X-Hub-Signature-256');
    const raw = await readBody(req, limit);
    if (!SIGNATURE.test(signature) || raw.length === 0) throw new HttpError(401, 'signature does not match');
    const text = raw.toString('utf8');
    // The HMAC is over the bytes: a body that does not survive UTF-8 decoding cannot match.
    if (!Buffer.from(text, 'utf8').equals(raw) || !(await webhooks.verify(text, signature))) {
      throw new HttpError(401, 'signature does not match');
    }
    return raw;
  }

  async function act(event: string, delivery: string, raw: Buffer): Promise<Reply> {
    if (event === 'ping') return { status: 200, body: { message: 'pong', delivery } };
    if (event !== 'workflow_job') return { status: 202, body: { message: `event ${event} ignored`, delivery } };
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new HttpError(400, 'body is not JSON');
    }
    let job;
    try {
      job = parseWorkflowJob(body);
    } catch (err) {
      if (err instanceof PayloadError) throw new HttpError(400, err.message);
      throw err;
    }
    const routed = await client.withDeadline(Date.now() + deliveryTimeoutMs, () => router.route(job));
    return { status: routed.status, body: { ...routed.body, delivery } };
  }

  async function webhook(req: IncomingMessage): Promise<Reply> {
    const raw = await verified(req);
    const event = header(req, 'x-github-event');
    const delivery = header(req, 'x-github-delivery');
    if (!event) throw new HttpError(400, 'missing X-GitHub-Event');
    if (!delivery) throw new HttpError(400, 'missing X-GitHub-Delivery');
    const previous = deliveries.get(delivery);
    if (previous) {
      const done = await previous.catch(() => undefined);
      if (done) {
        logger.info('duplicate delivery acknowledged', { delivery, event });
        return { status: 200, body: { message: 'duplicate delivery; already handled', delivery, duplicate: true } };
      }
    }
    const outcome = act(event, delivery, raw);
    deliveries.set(delivery, outcome);
    try {
      const reply = await outcome;
      logger.info('delivery handled', { delivery, event, status: reply.status });
      return reply;
    } catch (err) {
      if (deliveries.get(delivery) === outcome) deliveries.delete(delivery);
      throw err;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://receiver').pathname;
    let reply: Reply;
    try {
      if (path === WEBHOOK_PATH) {
        if (req.method !== 'POST') throw new HttpError(405, `${req.method} not allowed; use POST`, { allow: 'POST' });
        reply = await webhook(req);
      } else if (path === HEALTH_PATH) {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `${req.method} not allowed; use GET`, { allow: 'GET, HEAD' });
        reply = { status: 200, body: { status: 'ok' } };
      } else {
        throw new HttpError(404, 'Not Found');
      }
    } catch (err) {
      if (err instanceof HttpError) {
        if (err.status === 401) logger.warn('delivery rejected', { reason: err.message, delivery: header(req, 'x-github-delivery'), remote: req.socket.remoteAddress });
        else if (err.status !== 404 && err.status !== 405) logger.warn('delivery refused', { status: err.status, reason: err.message, delivery: header(req, 'x-github-delivery') });
        reply = { status: err.status, body: { message: err.message }, headers: err.headers };
      } else {
        logger.error('delivery failed', { delivery: header(req, 'x-github-delivery'), reason: errorMessage(err)?.split('\n')[0] });
        reply = { status: 503, body: { message: 'could not reach Temporal; redeliver later' } };
      }
    }
    send(res, reply);
  }

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error('webhook handler crashed', { reason: errorMessage(err) });
      if (!res.headersSent) send(res, { status: 500, body: { message: 'internal error' } });
      else res.destroy();
    });
  };
}

function send(res: ServerResponse, reply: Reply): void {
  const text = JSON.stringify(reply.body);
  for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.writeHead(reply.status);
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** A node:http server serving the receiver; call `listen` (or `listenOn`) to start it. */
export function createWebhookServer(opts: WebhookServerOptions): Server {
  const server = createServer(createWebhookHandler(opts));
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  return server;
}

/** Starts listening and resolves with the receiver's base URL. */
export async function listenOn(server: Server, port: number, host = '127.0.0.1'): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port: bound } = server.address() as AddressInfo;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${shown.includes(':') ? `[${shown}]` : shown}:${bound}`;
}

/** Stops accepting, closes idle connections, waits for requests in flight. */
export async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  await closed;
}
