/**
 * The GitHub webhook receiver: `POST /webhooks/github` checks the delivery's
 * `X-Hub-Signature-256` over the raw body bytes (JSON, or form-encoded with the JSON in its
 * `payload` field), acts once per `X-GitHub-Delivery`, and hands `workflow_job` events to the
 * router (demand scaling); `GET /healthz` answers whether Temporal does. Every Temporal call
 * made for a request is bounded (webhooks/temporal.ts): a delivery gets its 503 within
 * `deliveryTimeoutMs` (5 s), well inside GitHub's 10 s, and is forgotten so its redelivery is
 * processed. Built on node:http. Never logs the secret or payloads.
 */
import { Webhooks } from '@octokit/webhooks';
import { Client, isGrpcServiceError } from '@temporalio/client';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LruMap } from './lru.js';
import type { WebhookLogger } from './log.js';
import { parseWorkflowJob, PayloadError } from './payload.js';
import { PoolDirectory, PoolsUnansweredError } from './pools.js';
import { JobRouter } from './router.js';
import { isTemporalUnavailable, TemporalCalls, TemporalTimeoutError, temporalReason } from './temporal.js';
import { errorMessage } from '../core/failures.js';

export const WEBHOOK_PATH = '/webhooks/github';
export const HEALTH_PATH = '/healthz';
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;
/** Budget for the Temporal calls of one delivery: GitHub gives up after 10 s. */
export const DEFAULT_DELIVERY_TIMEOUT_MS = 5_000;
/** Budget for /healthz's call to Temporal. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 2_000;
/** How long closeServer waits for requests in flight before it drops their connections. */
export const DEFAULT_CLOSE_GRACE_MS = 10_000;

const FORM = 'application/x-www-form-urlencoded';

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
  /** Budget for the Temporal calls of one delivery, all of them. Default 5000. */
  deliveryTimeoutMs?: number;
  /** Budget for one pool's status query, within the delivery's. Default 2000. */
  poolQueryTimeoutMs?: number;
  /** Budget for /healthz's Temporal call. Default 2000. */
  healthTimeoutMs?: number;
  /**
   * Tracks the receiver's Temporal calls; pass one to `drain()` it after closeServer and
   * before closing the client's connection (a call given up on may still have a retry pending).
   */
  calls?: TemporalCalls;
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

/** The client went away before its request body was complete: nothing to answer, nothing done. */
class ClientAbortedError extends Error {
  override readonly name = 'ClientAbortedError';
  constructor(
    readonly received: number,
    readonly expected: number | undefined,
  ) {
    super(`client disconnected after ${received} of ${expected ?? 'an unknown number of'} body bytes`);
  }
}

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads the body, refusing (413) as soon as it outgrows `limit`; a client gone mid-body is a ClientAbortedError. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declaredHeader = header(req, 'content-length');
  const declared = declaredHeader === undefined ? NaN : Number(declaredHeader);
  const expected = Number.isFinite(declared) ? declared : undefined;
  if (expected !== undefined && expected > limit) {
    return Promise.reject(new HttpError(413, `body over the ${limit}-byte limit`, { connection: 'close' }));
  }
  if (req.readableAborted || req.destroyed) return Promise.reject(new ClientAbortedError(0, expected));
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
    const onAborted = () => {
      cleanup();
      reject(new ClientAbortedError(size, expected));
    };
    const onError = (err: NodeJS.ErrnoException) => {
      cleanup();
      // Node reports a client gone mid-body as ECONNRESET "aborted".
      if (err.code === 'ECONNRESET' || req.readableAborted) reject(new ClientAbortedError(size, expected));
      else reject(new HttpError(400, `could not read the request body: ${errorMessage(err).split('\n')[0]}`, { connection: 'close' }));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      req.off('close', onAborted);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
    // 'close' before 'end': the connection ended with the body incomplete.
    req.on('close', onAborted);
  });
}

/** The delivery's JSON: the body itself, or the `payload` field of a form-encoded body. */
function decodePayload(raw: Buffer, contentType: string | undefined): unknown {
  const media = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (media === FORM) {
    const payloads = new URLSearchParams(raw.toString('utf8')).getAll('payload');
    if (payloads.length === 0) throw new HttpError(400, 'form-encoded body has no payload field; GitHub sends the JSON as payload=…');
    if (payloads.length > 1) throw new HttpError(400, `form-encoded body has the payload field more than once (${payloads.length} times)`);
    try {
      return JSON.parse(payloads[0]!);
    } catch {
      throw new HttpError(400, 'the form-encoded payload field is not JSON');
    }
  }
  if (media === '' || media === 'application/json' || /^application\/[\w.-]+\+json$/.test(media)) {
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch {
      throw new HttpError(400, 'body is not JSON');
    }
  }
  throw new HttpError(415, `content type ${media} is not supported; set the webhook's content type to application/json or ${FORM}`);
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
  const deliveryTimeoutMs = opts.deliveryTimeoutMs ?? DEFAULT_DELIVERY_TIMEOUT_MS;
  const healthTimeoutMs = opts.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
  const directory = new PoolDirectory({
    client,
    cacheMs: opts.poolCacheMs,
    // One pool that cannot answer must not spend the whole delivery's budget.
    queryTimeoutMs: Math.min(opts.poolQueryTimeoutMs ?? 2_000, deliveryTimeoutMs),
    logger,
  });
  const router = new JobRouter({ client, directory, logger });
  const calls = opts.calls ?? new TemporalCalls();
  /** Delivery id → the outcome of acting on it (in flight or done). Failures are forgotten. */
  const deliveries = new LruMap<string, { outcome: Promise<Reply>; settled: boolean }>(opts.deliveryMemory ?? 10_000);

  async function verified(req: IncomingMessage): Promise<Buffer> {
    const signature = header(req, 'x-hub-signature-256');
    if (!signature) throw new HttpError(401, 'missing X-Hub-Signature-256');
    const raw = await readBody(req, limit);
    if (!SIGNATURE.test(signature) || raw.length === 0) throw new HttpError(401, 'signature does not match');
    const text = raw.toString('utf8');
    // The HMAC is over the bytes as received (a form body's, not its decoded payload's): a body
    // that does not survive UTF-8 decoding cannot match.
    if (!Buffer.from(text, 'utf8').equals(raw) || !(await webhooks.verify(text, signature))) {
      throw new HttpError(401, 'signature does not match');
    }
    return raw;
  }

  async function act(event: string, delivery: string, raw: Buffer, contentType: string | undefined): Promise<Reply> {
    if (event === 'ping') return { status: 200, body: { message: 'pong', delivery } };
    if (event !== 'workflow_job') return { status: 202, body: { message: `event ${event} ignored`, delivery } };
    const body = decodePayload(raw, contentType);
    let job;
    try {
      job = parseWorkflowJob(body);
    } catch (err) {
      if (err instanceof PayloadError) throw new HttpError(400, err.message);
      throw err;
    }
    const routed = await calls.bounded(client, deliveryTimeoutMs, `routing job ${job.jobId}`, () => router.route(job));
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
      // Done, or in flight (and bounded by deliveryTimeoutMs). An attempt in flight that fails is
      // this one's answer too, rather than a second attempt past GitHub's timeout; it is
      // forgotten, so a later redelivery acts anew.
      if (!previous.settled) logger.info('redelivery while the first attempt is in flight; answering with its outcome', { delivery, event });
      await previous.outcome;
      logger.info('duplicate delivery acknowledged', { delivery, event });
      return { status: 200, body: { message: 'duplicate delivery; already handled', delivery, duplicate: true } };
    }
    const entry = { outcome: act(event, delivery, raw, header(req, 'content-type')), settled: false };
    deliveries.set(delivery, entry);
    try {
      const reply = await entry.outcome;
      logger.info('delivery handled', { delivery, event, status: reply.status });
      return reply;
    } catch (err) {
      if (deliveries.get(delivery) === entry) deliveries.delete(delivery);
      throw err;
    } finally {
      entry.settled = true;
    }
  }

  /** One check at a time, however many probes ask. */
  let healthCheck: Promise<Reply> | undefined;
  let healthy: boolean | undefined;
  function health(): Promise<Reply> {
    healthCheck ??= checkHealth().finally(() => {
      healthCheck = undefined;
    });
    return healthCheck;
  }

  async function checkHealth(): Promise<Reply> {
    const namespace = client.options.namespace;
    let temporal: string;
    try {
      await calls.bounded(client, healthTimeoutMs, 'describing the namespace', () => client.workflowService.describeNamespace({ namespace }));
      temporal = 'ok';
    } catch (err) {
      // gRPC NOT_FOUND: the server answers, the namespace is not there.
      temporal = isGrpcServiceError(err) && err.code === 5 ? `namespace "${namespace}" not found` : `unreachable: ${temporalReason(err)}`;
    }
    const ok = temporal === 'ok';
    if (ok !== healthy) {
      if (ok) logger.info('health: Temporal answers', { namespace });
      else logger.warn('health: Temporal does not answer', { namespace, temporal });
      healthy = ok;
    }
    return { status: ok ? 200 : 503, body: { ok, temporal } };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://receiver').pathname;
    const delivery = header(req, 'x-github-delivery');
    let reply: Reply;
    try {
      if (path === WEBHOOK_PATH) {
        if (req.method !== 'POST') throw new HttpError(405, `${req.method} not allowed; use POST`, { allow: 'POST' });
        reply = await webhook(req);
      } else if (path === HEALTH_PATH) {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `${req.method} not allowed; use GET`, { allow: 'GET, HEAD' });
        reply = await health();
      } else {
        throw new HttpError(404, 'Not Found');
      }
    } catch (err) {
      if (err instanceof ClientAbortedError) {
        // Not a failure of the receiver nor of Temporal: GitHub redelivers what it did not see answered.
        logger.warn('client disconnected before the request body was complete; nothing done', {
          delivery,
          received: err.received,
          expected: err.expected,
          remote: req.socket.remoteAddress,
        });
        res.destroy();
        return;
      }
      if (err instanceof HttpError) {
        if (err.status === 401) logger.warn('delivery rejected', { reason: err.message, delivery, remote: req.socket.remoteAddress });
        else if (err.status !== 404 && err.status !== 405) logger.warn('delivery refused', { status: err.status, reason: err.message, delivery });
        reply = { status: err.status, body: { message: err.message }, headers: err.headers };
      } else if (err instanceof PoolsUnansweredError) {
        logger.warn('delivery not settled: pools did not answer', { delivery, pools: [...err.workflowIds] });
        reply = { status: 503, body: { message: `${err.message}; redeliver later`, delivery }, headers: { 'retry-after': '30' } };
      } else if (isTemporalUnavailable(err)) {
        logger.error('delivery failed: Temporal unavailable', { delivery, reason: temporalReason(err) });
        const why = err instanceof TemporalTimeoutError ? `Temporal did not answer within ${err.ms / 1000}s` : 'could not reach Temporal';
        reply = { status: 503, body: { message: `${why}; redeliver later`, delivery }, headers: { 'retry-after': '30' } };
      } else {
        logger.error('delivery failed', { delivery, reason: errorMessage(err).split('\n')[0] });
        reply = { status: 500, body: { message: 'internal error; redeliver later', delivery } };
      }
    }
    if (req.socket.destroyed) {
      logger.warn('client disconnected before the answer', { delivery, status: reply.status });
      return;
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

/**
 * Stops accepting, closes idle connections, waits for requests in flight (each bounded by the
 * delivery budget) and, after `graceMs`, drops whatever connections are left.
 */
export async function closeServer(server: Server, graceMs = DEFAULT_CLOSE_GRACE_MS): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // Keep-alive connections that go idle after their answer are closed as they do.
  const sweep = setInterval(() => server.closeIdleConnections(), 100);
  const force = setTimeout(() => server.closeAllConnections(), graceMs);
  try {
    await closed;
  } finally {
    clearInterval(sweep);
    clearTimeout(force);
  }
}
