/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * A local emulator of the GitHub REST endpoints Ekiden uses (self-hosted runners, runner
 * groups, App installation tokens), with GitHub's paths, status codes, JSON shapes, error
 * bodies and rate-limit headers, plus:
 * - job dispatch to runners (`/_emulator/jobs`), run by the runner stand-in (emulator/runner);
 * - fault injection (`/_emulator/faults`): statuses, primary/secondary rate limits, delays;
 * - a leak-scan list of every secret it issued (`/_emulator/secrets`).
 * Built on node:http only. The runner-facing protocol is described in protocol.ts.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { JwtError, parsePublicKey, verifyAppJwt, type JwtApp } from './jwt.js';
import { WebhookSender, type WebhookTarget } from './webhooks.js';
import {
  DEFAULT_GROUP,
  EmulatorState,
  StateError,
  isoSeconds,
  scopeFromWebPath,
  scopeKey,
  type EmulatorJob,
  type EmulatorRunner,
  type JobSpec,
  type Scope,
  type StateEvents,
  type TokenInfo,
} from './state.js';
import type {
  CompleteRequest,
  CompleteResponse,
  JobConclusion,
  RegistrationRequest,
  RegistrationResponse,
  SessionRequest,
  SessionResponse,
  StepReport,
  TokenRequest,
  TokenResponse,
} from './protocol.js';

export type { EmulatorJob, EmulatorJobStep, EmulatorRunner, JobEvent, JobSpec, RunnerEvent, RunnerLabel, RunnerView } from './state.js';

export interface EmulatorApp {
  appId: number;
  publicKeyPem: string;
  installations: Array<{ id: number; /** org or user login */ account: string }>;
}

export interface GitHubEmulatorOptions {
  /** Default 0 (any free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Accepted personal access tokens. */
  tokens?: string[];
  apps?: EmulatorApp[];
  /**
   * URL guests use to reach the emulator (written into runner configs as serverUrl); a
   * function receives the emulator's own URL once it listens. Default: its own URL.
   */
  runnerBaseUrl?: string | ((url: string) => string);
  /** A runner whose stand-in stopped polling this long is offline. Default 5000. */
  offlineAfterMs?: number;
  /** Orgs that exist; others 404. Default: every org exists. */
  orgs?: string[];
  /** `owner/repo`s that exist; others 404. Default: every repo exists. */
  repos?: string[];
  /** Enterprises that exist; others 404. Default: every enterprise exists. */
  enterprises?: string[];
  /** Core rate limit per credential per hour. Default 5000. */
  rateLimit?: number;
  /** Longest runner message poll (capped at offlineAfterMs). Default 20000. */
  pollTimeoutMs?: number;
  /** Hooks that get signed `workflow_job` deliveries (more with `webhooks.add`). */
  webhooks?: WebhookTarget[];
}

export type FaultKind = 'status' | 'primary-rate-limit' | 'secondary-rate-limit' | 'delay';

export interface FaultSpec {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Regular expression source matched against the URL path (any when absent). */
  path?: string;
  kind: FaultKind;
  /** For `status` (default 500); for rate limits 403 (default) or 429. */
  status?: number;
  delayMs?: number;
  /** How many requests it hits; default 1; -1 = until cleared. */
  times?: number;
  /** Secondary: `retry-after` (default 1). Primary: seconds until `x-ratelimit-reset` (default 1). */
  retryAfterSeconds?: number;
}

export interface FaultView extends FaultSpec {
  id: number;
  remaining: number;
}

interface Fault extends FaultView {
  re: RegExp | undefined;
}

interface RateBucket {
  limit: number;
  used: number;
  resetAt: number;
}

const DOCS = {
  root: 'https://docs.github.com/rest',
  runners: 'https://docs.github.com/rest/actions/self-hosted-runners',
  groups: 'https://docs.github.com/rest/actions/self-hosted-runner-groups',
  apps: 'https://docs.github.com/rest/apps/apps',
  rate: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api',
  secondary: 'https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits',
};

const MAX_BODY = 1 << 20;

class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function githubError(status: number, message: string, documentationUrl: string, extra: Record<string, unknown> = {}): HttpError {
  return new HttpError(status, message, { documentation_url: documentationUrl, status: String(status), ...extra });
}

function notFound(doc = DOCS.root): HttpError {
  return githubError(404, 'Not Found', doc);
}

function invalid(detail: string, doc: string): HttpError {
  return githubError(422, `Invalid request.\n\n${detail}`, doc, { errors: [detail] });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function numericId(text: string): number {
  return createHash('sha256').update(text.toLowerCase()).digest().readUInt32BE(0) % 100_000_000;
}

/** Validates an admin/in-process job request; throws Error naming the field. */
export function parseJobSpec(body: unknown): JobSpec {
  if (!isRecord(body)) throw new Error('body must be a JSON object');
  const { repo, labels, steps, name } = body;
  if (typeof repo !== 'string' || !/^[^/\s]+\/[^/\s]+$/.test(repo)) throw new Error('repo must be "owner/repo"');
  if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string' && l.length > 0)) {
    throw new Error('labels must be a non-empty array of strings');
  }
  if (!Array.isArray(steps) || steps.length === 0) throw new Error('steps must be a non-empty array');
  const parsedSteps = steps.map((s, i) => {
    if (!isRecord(s) || typeof s['run'] !== 'string') throw new Error(`steps[${i}].run must be a string`);
    if (s['name'] !== undefined && typeof s['name'] !== 'string') throw new Error(`steps[${i}].name must be a string`);
    return { run: s['run'], ...(typeof s['name'] === 'string' ? { name: s['name'] } : {}) };
  });
  if (name !== undefined && typeof name !== 'string') throw new Error('name must be a string');
  return { repo, labels: labels as string[], steps: parsedSteps, ...(name !== undefined ? { name } : {}) };
}

function parseFault(body: unknown): FaultSpec {
  if (!isRecord(body)) throw new Error('body must be a JSON object');
  const kinds: FaultKind[] = ['status', 'primary-rate-limit', 'secondary-rate-limit', 'delay'];
  if (!kinds.includes(body['kind'] as FaultKind)) throw new Error(`kind must be one of ${kinds.join(', ')}`);
  const num = (k: string) => {
    const v = body[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) throw new Error(`${k} must be a number`);
    return v as number | undefined;
  };
  const str = (k: string) => {
    const v = body[k];
    if (v !== undefined && typeof v !== 'string') throw new Error(`${k} must be a string`);
    return v as string | undefined;
  };
  const times = num('times');
  if (times !== undefined && (!Number.isInteger(times) || times === 0 || times < -1)) throw new Error('times must be a positive integer, or -1 for unlimited');
  const path = str('path');
  if (path !== undefined) {
    try {
      new RegExp(path);
    } catch {
      throw new Error(`path is not a valid regular expression: ${path}`);
    }
  }
  return {
    kind: body['kind'] as FaultKind,
    method: str('method'),
    path,
    status: num('status'),
    delayMs: num('delayMs'),
    times,
    retryAfterSeconds: num('retryAfterSeconds'),
  };
}

const OS_LABELS: Record<string, string> = { linux: 'Linux', darwin: 'macOS', macos: 'macOS', win32: 'Windows', windows: 'Windows' };
const ARCH_LABELS: Record<string, string> = { x64: 'X64', arm64: 'ARM64', arm: 'ARM' };

export class GitHubEmulator extends EventEmitter<StateEvents> {
  private readonly opts: GitHubEmulatorOptions;
  private readonly state: EmulatorState;
  private readonly apps: Array<JwtApp & { installations: EmulatorApp['installations'] }>;
  private readonly offlineAfterMs: number;
  private readonly pollTimeoutMs: number;
  private readonly rateLimit: number;
  private readonly buckets = new Map<string, RateBucket>();
  private faultList: Fault[] = [];
  private faultSeq = 0;
  private server: Server | undefined;
  private ownUrl: string | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly startedAt = isoSeconds();
  /** Signed `workflow_job` webhook deliveries of job events (see webhooks.ts). */
  readonly webhooks: WebhookSender;

  constructor(opts: GitHubEmulatorOptions = {}) {
    super();
    this.opts = opts;
    this.offlineAfterMs = opts.offlineAfterMs ?? 5000;
    this.pollTimeoutMs = Math.max(10, Math.min(opts.pollTimeoutMs ?? 20_000, this.offlineAfterMs));
    this.rateLimit = opts.rateLimit ?? 5000;
    this.state = new EmulatorState({ offlineAfterMs: this.offlineAfterMs, runnerBaseUrl: () => this.runnerBaseUrl });
    for (const t of opts.tokens ?? []) this.state.addPat(t);
    this.apps = (opts.apps ?? []).map((a) => ({ appId: a.appId, publicKey: parsePublicKey(a.publicKeyPem), installations: a.installations }));
    this.state.on('job', (e) => this.emit('job', e));
    this.state.on('runner', (e) => this.emit('runner', e));
    this.webhooks = new WebhookSender({ apiUrl: () => this.ownUrl ?? 'http://127.0.0.1' });
    for (const w of opts.webhooks ?? []) this.webhooks.add(w);
    this.state.on('job', (e) => this.webhooks.jobEvent(e));
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<{ url: string }> {
    if (this.server) throw new Error('GitHubEmulator already started');
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.sendJson(res, 500, { message: `Server Error: ${(err as Error).message}` });
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 30_000;
    const host = this.opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.ownUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.sweeper = setInterval(() => this.state.sweep(), Math.max(20, Math.min(1000, Math.floor(this.offlineAfterMs / 5))));
    this.sweeper.unref();
    return { url: this.ownUrl };
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    clearInterval(this.sweeper);
    this.webhooks.close();
    this.state.close();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  get url(): string {
    if (!this.ownUrl) throw new Error('GitHubEmulator not started');
    return this.ownUrl;
  }

  get runnerBaseUrl(): string {
    const base = this.opts.runnerBaseUrl;
    if (typeof base === 'string') return base.replace(/\/$/, '');
    return (base ? base(this.url) : this.url).replace(/\/$/, '');
  }

  // ------------------------------------------------------------------ in-process access

  runners(): EmulatorRunner[] {
    return this.state.runners();
  }

  jobs(): EmulatorJob[] {
    return this.state.jobs();
  }

  job(id: number): EmulatorJob | undefined {
    return this.state.job(id);
  }

  queueJob(spec: JobSpec): EmulatorJob {
    const parsed = parseJobSpec(spec);
    if (!this.repoExists(parsed.repo)) throw new Error(`repo ${parsed.repo} does not exist in this emulator`);
    return this.state.queueJob(parsed);
  }

  cancelJob(id: number): EmulatorJob {
    return this.state.cancelJob(id);
  }

  secrets(): string[] {
    return this.state.secrets();
  }

  addToken(token: string): void {
    this.state.addPat(token);
  }

  injectFault(spec: FaultSpec): FaultView {
    const parsed = parseFault(spec);
    const fault: Fault = {
      ...parsed,
      id: ++this.faultSeq,
      remaining: parsed.times === undefined ? 1 : parsed.times < 0 ? Infinity : parsed.times,
      re: parsed.path === undefined ? undefined : new RegExp(parsed.path),
    };
    this.faultList.push(fault);
    return this.faultView(fault);
  }

  clearFaults(): void {
    this.faultList = [];
  }

  faults(): FaultView[] {
    return this.faultList.map((f) => this.faultView(f));
  }

  private faultView(f: Fault): FaultView {
    const { re: _re, ...view } = f;
    return { ...view, remaining: Number.isFinite(view.remaining) ? view.remaining : -1 };
  }

  /** Resolves with the job once `predicate` holds (default: completed). */
  waitForJob(id: number, predicate: (job: EmulatorJob) => boolean = (j) => j.status === 'completed', timeoutMs = 30_000): Promise<EmulatorJob> {
    return this.waitFor(() => {
      const job = this.state.job(id);
      return job && predicate(job) ? job : undefined;
    }, timeoutMs, () => `job ${id}: ${JSON.stringify(this.state.job(id) ?? null)}`);
  }

  /**
   * Resolves once `predicate` holds for the runner with this id or name (any scope);
   * the predicate gets undefined while no such runner exists (e.g. after deletion).
   */
  waitForRunner(
    which: { id?: number; name?: string },
    predicate: (runner: EmulatorRunner | undefined) => boolean,
    timeoutMs = 30_000,
  ): Promise<EmulatorRunner | undefined> {
    const find = () => this.state.runners().find((r) => (which.id === undefined || r.id === which.id) && (which.name === undefined || r.name === which.name));
    return this.waitFor(
      () => {
        const r = find();
        return predicate(r) ? { r } : undefined;
      },
      timeoutMs,
      () => `runner ${JSON.stringify(which)}: ${JSON.stringify(find() ?? null)}`,
    ).then((x) => x.r);
  }

  private waitFor<T>(check: () => T | undefined, timeoutMs: number, describe: () => string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const first = check();
      if (first !== undefined) return resolve(first);
      const cleanup = () => {
        clearTimeout(timer);
        clearInterval(ticker);
        this.off('job', onEvent);
        this.off('runner', onEvent);
      };
      const onEvent = () => {
        const v = check();
        if (v !== undefined) {
          cleanup();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`));
      }, timeoutMs);
      // Status can change without an event (a runner going offline is detected by the sweeper).
      const ticker = setInterval(onEvent, 50);
      this.on('job', onEvent);
      this.on('runner', onEvent);
    });
  }

  // ------------------------------------------------------------------ HTTP plumbing

  private sendJson(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.setHeader('content-type', 'application/json; charset=utf-8');
    if (status === 204 || body === undefined) {
      res.writeHead(status);
      res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.setHeader('content-length', Buffer.byteLength(text));
    res.writeHead(status);
    res.end(text);
  }

  private sendError(res: ServerResponse, err: HttpError): void {
    this.sendJson(res, err.status, { message: err.message, ...err.extra }, err.headers);
  }

  private async readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) throw githubError(413, 'Payload too large', DOCS.root);
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8').trim();
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw githubError(400, 'Problems parsing JSON', DOCS.root);
    }
  }

  private bucket(key: string, limit: number): RateBucket {
    const now = Date.now();
    let b = this.buckets.get(key);
    if (!b || b.resetAt <= now) {
      b = { limit, used: 0, resetAt: now + 3600_000 };
      this.buckets.set(key, b);
    }
    return b;
  }

  private setRateHeaders(res: ServerResponse, b: RateBucket, override: Partial<{ remaining: number; reset: number }> = {}): void {
    res.setHeader('x-ratelimit-limit', String(b.limit));
    res.setHeader('x-ratelimit-remaining', String(override.remaining ?? Math.max(0, b.limit - b.used)));
    res.setHeader('x-ratelimit-used', String(override.remaining === 0 ? b.limit : b.used));
    res.setHeader('x-ratelimit-reset', String(override.reset ?? Math.ceil(b.resetAt / 1000)));
    res.setHeader('x-ratelimit-resource', 'core');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = [4, 4, 6, 6, 8].map((n) => randomBytes(n / 2).toString('hex').toUpperCase()).join(':');
    res.setHeader('x-github-request-id', requestId);
    res.setHeader('x-github-api-version-selected', '2022-11-28');
    res.setHeader('x-github-media-type', 'github.v3; format=json');
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    const path = url.pathname;
    try {
      if (path.startsWith('/_emulator/runner-api/')) {
        this.setRateHeaders(res, this.bucket('emulator-internal', 1_000_000));
        await this.runnerApi(req, res, url);
      } else if (path === '/_emulator' || path.startsWith('/_emulator/')) {
        this.setRateHeaders(res, this.bucket('emulator-internal', 1_000_000));
        await this.admin(req, res, url);
      } else if (path === '/actions/runner-registration' || path === '/api/v3/actions/runner-registration') {
        this.setRateHeaders(res, this.bucket('emulator-internal', 1_000_000));
        await this.registration(req, res);
      } else {
        await this.rest(req, res, url, requestId);
      }
    } catch (err) {
      if (err instanceof HttpError) this.sendError(res, err);
      else throw err;
    }
  }

  // ------------------------------------------------------------------ REST API

  private credentialKey(req: IncomingMessage): { token: string | undefined; scheme: string | undefined } {
    const header = req.headers.authorization;
    const m = header ? /^(\S+)\s+(\S+)\s*$/.exec(header) : null;
    if (!m) return { token: undefined, scheme: undefined };
    return { scheme: m[1]!.toLowerCase(), token: m[2]! };
  }

  private takeFault(method: string, path: string): Fault | undefined {
    const f = this.faultList.find((x) => (!x.method || x.method.toUpperCase() === method) && (!x.re || x.re.test(path)));
    if (!f) return undefined;
    f.remaining--;
    if (f.remaining <= 0) this.faultList = this.faultList.filter((x) => x !== f);
    return f;
  }

  private rateLimitedMessage(info: TokenInfo | undefined, req: IncomingMessage, requestId: string): string {
    const who =
      info?.kind === 'installation'
        ? `installation ID ${info.installationId}`
        : info?.kind === 'pat'
          ? 'user ID 1'
          : (req.socket.remoteAddress ?? '127.0.0.1');
    return `API rate limit exceeded for ${who}. If you reach out to GitHub Support for help, please include the request ID ${requestId} and timestamp ${new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}.`;
  }

  private failWith(f: Fault, res: ServerResponse, bucket: RateBucket, info: TokenInfo | undefined, req: IncomingMessage, requestId: string): never {
    if (f.kind === 'primary-rate-limit') {
      const reset = Math.ceil(Date.now() / 1000) + (f.retryAfterSeconds ?? 1);
      this.setRateHeaders(res, bucket, { remaining: 0, reset });
      throw githubError(f.status ?? 403, this.rateLimitedMessage(info, req, requestId), DOCS.rate);
    }
    this.setRateHeaders(res, bucket);
    if (f.kind === 'secondary-rate-limit') {
      throw new HttpError(
        f.status ?? 403,
        `You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID ${requestId}.`,
        { documentation_url: DOCS.secondary, status: String(f.status ?? 403) },
        { 'retry-after': String(f.retryAfterSeconds ?? 1) },
      );
    }
    const status = f.status ?? 500;
    throw githubError(status, STATUS_CODES[status] ?? 'Error', DOCS.root);
  }

  private async rest(req: IncomingMessage, res: ServerResponse, url: URL, requestId: string): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname;
    const { token, scheme } = this.credentialKey(req);
    const isApp = path.startsWith('/app/') || path === '/app';
    const info = token && !isApp && (scheme === 'token' || scheme === 'bearer') ? this.state.lookupToken(token) : undefined;
    const bucket = info && token ? this.bucket(`token:${token}`, this.rateLimit) : this.bucket(`anon:${token ?? ''}`, isApp ? this.rateLimit : 60);

    const fault = this.takeFault(method, path);
    if (fault?.kind === 'delay') await sleep(fault.delayMs ?? 1000);
    else if (fault) this.failWith(fault, res, bucket, info, req, requestId);

    if (isApp) {
      bucket.used++;
      this.setRateHeaders(res, bucket);
      return this.appApi(req, res, method, path, token, scheme);
    }
    if (!info) {
      this.setRateHeaders(res, bucket);
      throw githubError(401, 'Bad credentials', DOCS.root);
    }
    if (bucket.used >= bucket.limit) {
      this.setRateHeaders(res, bucket);
      throw githubError(403, this.rateLimitedMessage(info, req, requestId), DOCS.rate);
    }
    bucket.used++;
    this.setRateHeaders(res, bucket);

    const m = /^\/(repos\/[^/]+\/[^/]+|orgs\/[^/]+|enterprises\/[^/]+)\/actions\/(.+?)\/?$/.exec(path);
    if (!m) throw notFound();
    const [kind, a, b] = m[1]!.split('/').map(decodeURIComponent);
    const scope: Scope =
      kind === 'repos' ? { kind: 'repo', owner: a!, repo: b! } : kind === 'orgs' ? { kind: 'org', org: a! } : { kind: 'enterprise', enterprise: a! };
    const action = m[2]!;
    const route = (() => {
      if (action === 'runners' && method === 'GET') return 'list';
      if (action === 'runners/registration-token' && method === 'POST') return 'registration-token';
      if (action === 'runners/remove-token' && method === 'POST') return 'remove-token';
      if (action === 'runners/generate-jitconfig' && method === 'POST') return 'jit';
      if (/^runners\/\d+$/.test(action) && method === 'GET') return 'get';
      if (/^runners\/\d+$/.test(action) && method === 'DELETE') return 'delete';
      if (action === 'runner-groups' && method === 'GET' && scope.kind !== 'repo') return 'groups';
      return undefined;
    })();
    if (!route) throw notFound();
    this.checkScope(scope, info);
    const runnerId = Number(action.split('/')[1]);

    switch (route) {
      case 'list':
        return this.listRunners(req, res, url, scope);
      case 'registration-token':
      case 'remove-token': {
        const { token: t, expiresAt } = this.state.issueRegistrationToken(route === 'remove-token' ? 'remove' : 'registration', scope);
        return this.sendJson(res, 201, { token: t, expires_at: isoSeconds(expiresAt) });
      }
      case 'jit':
        return this.generateJit(req, res, scope);
      case 'get': {
        const r = this.state.runner(scope, runnerId);
        if (!r) throw notFound(DOCS.runners);
        return this.sendJson(res, 200, EmulatorState.restView(r));
      }
      case 'delete':
        try {
          this.state.deleteRunner(scope, runnerId);
        } catch (err) {
          if (err instanceof StateError && err.code === 'busy') throw githubError(422, err.message, DOCS.runners, { errors: [err.message] });
          if (err instanceof StateError && err.code === 'not-found') throw notFound(DOCS.runners);
          throw err;
        }
        return this.sendJson(res, 204);
      case 'groups':
        return this.sendJson(res, 200, {
          total_count: 1,
          runner_groups: [
            {
              id: DEFAULT_GROUP.id,
              name: DEFAULT_GROUP.name,
              visibility: 'all',
              default: true,
              runners_url: `${this.url}/${kind}/${encodeURIComponent(a!)}/actions/runner-groups/${DEFAULT_GROUP.id}/runners`,
              hosted_runners_url: `${this.url}/${kind}/${encodeURIComponent(a!)}/actions/runner-groups/${DEFAULT_GROUP.id}/hosted-runners`,
              inherited: false,
              allows_public_repositories: true,
              restricted_to_workflows: false,
              selected_workflows: [],
              workflow_restrictions_read_only: false,
            },
          ],
        });
    }
  }

  private repoExists(repo: string): boolean {
    const list = this.opts.repos;
    return list === undefined || list.some((r) => r.toLowerCase() === repo.toLowerCase());
  }

  private checkScope(scope: Scope, info: TokenInfo): void {
    const has = (list: string[] | undefined, v: string) => list === undefined || list.some((x) => x.toLowerCase() === v.toLowerCase());
    const exists =
      scope.kind === 'repo'
        ? this.repoExists(`${scope.owner}/${scope.repo}`)
        : scope.kind === 'org'
          ? has(this.opts.orgs, scope.org)
          : has(this.opts.enterprises, scope.enterprise);
    if (!exists) throw notFound(DOCS.runners);
    if (info.kind !== 'installation') return;
    if (scope.kind === 'enterprise') throw githubError(403, 'Resource not accessible by integration', DOCS.runners);
    const account = info.account!.toLowerCase();
    const owner = (scope.kind === 'repo' ? scope.owner : scope.org).toLowerCase();
    if (owner !== account) throw notFound(DOCS.runners);
    if (scope.kind === 'repo' && info.repositories && !info.repositories.some((r) => r.toLowerCase() === scope.repo.toLowerCase())) {
      throw notFound(DOCS.runners);
    }
  }

  private listRunners(req: IncomingMessage, res: ServerResponse, url: URL, scope: Scope): void {
    const q = url.searchParams;
    const perPageRaw = Number(q.get('per_page') ?? 30);
    const perPage = Number.isInteger(perPageRaw) && perPageRaw > 0 ? Math.min(perPageRaw, 100) : 30;
    const pageRaw = Number(q.get('page') ?? 1);
    const page = Number.isInteger(pageRaw) && pageRaw > 0 ? pageRaw : 1;
    const name = q.get('name');
    const all = this.state
      .runners(scope)
      .filter((r) => name === null || r.name.toLowerCase() === name.toLowerCase())
      .sort((x, y) => x.id - y.id);
    const lastPage = Math.max(1, Math.ceil(all.length / perPage));
    const slice = all.slice((page - 1) * perPage, page * perPage).map((r) => EmulatorState.restView(r));
    const links: string[] = [];
    const base = `http://${req.headers.host ?? new URL(this.url).host}${url.pathname}`;
    const link = (p: number, rel: string) => {
      const params = new URLSearchParams(q);
      params.set('per_page', String(perPage));
      params.set('page', String(p));
      links.push(`<${base}?${params.toString()}>; rel="${rel}"`);
    };
    if (page > 1) link(Math.min(page - 1, lastPage), 'prev');
    if (page < lastPage) link(page + 1, 'next');
    if (page < lastPage) link(lastPage, 'last');
    if (page > 1) link(1, 'first');
    this.sendJson(res, 200, { total_count: all.length, runners: slice }, links.length ? { link: links.join(', ') } : {});
  }

  private async generateJit(req: IncomingMessage, res: ServerResponse, scope: Scope): Promise<void> {
    const doc = `${DOCS.runners}#create-configuration-for-a-just-in-time-runner-for-${scope.kind === 'repo' ? 'a-repository' : scope.kind === 'org' ? 'an-organization' : 'an-enterprise'}`;
    const body = await this.readBody(req);
    if (!isRecord(body)) throw invalid('Body must be a JSON object.', doc);
    const { name, runner_group_id: groupId, labels, work_folder: workFolder } = body;
    for (const field of ['name', 'runner_group_id', 'labels']) {
      if (body[field] === undefined) throw invalid(`"${field}" wasn't supplied.`, doc);
    }
    if (typeof name !== 'string' || name.trim() === '') throw invalid(`For 'properties/name', ${JSON.stringify(name)} is not a non-empty string.`, doc);
    if (!Number.isInteger(groupId)) throw invalid(`For 'properties/runner_group_id', ${JSON.stringify(groupId)} is not an integer.`, doc);
    if (!Array.isArray(labels)) throw invalid(`For 'properties/labels', ${JSON.stringify(labels)} is not an array.`, doc);
    if (labels.length < 1) throw invalid(`For 'properties/labels', [] has fewer than 1 items.`, doc);
    if (labels.length > 100) throw invalid(`For 'properties/labels', the array has more than 100 items.`, doc);
    for (const l of labels) {
      if (typeof l !== 'string' || l.trim() === '') throw invalid(`For 'items', ${JSON.stringify(l)} is not a non-empty string.`, doc);
    }
    if (workFolder !== undefined && typeof workFolder !== 'string') {
      throw invalid(`For 'properties/work_folder', ${JSON.stringify(workFolder)} is not a string.`, doc);
    }
    if (groupId !== DEFAULT_GROUP.id) throw invalid(`Runner group ${String(groupId)} does not exist.`, doc);
    let created;
    try {
      created = this.state.createRunner({
        scope,
        name: name.trim(),
        labels: (labels as string[]).map((l) => ({ name: l.trim(), type: 'custom' as const })),
        jit: true,
        ephemeral: true,
        groupId: DEFAULT_GROUP.id,
        workFolder: workFolder ?? '_work',
        os: 'unknown',
      });
    } catch (err) {
      if (err instanceof StateError && err.code === 'conflict') throw githubError(409, err.message, doc);
      throw err;
    }
    const encoded = Buffer.from(JSON.stringify(created.files)).toString('base64');
    this.state.noteSecret(encoded);
    this.sendJson(res, 201, { runner: EmulatorState.restView(created.runner), encoded_jit_config: encoded });
  }

  // ------------------------------------------------------------------ GitHub App

  private async appApi(req: IncomingMessage, res: ServerResponse, method: string, path: string, token: string | undefined, scheme: string | undefined): Promise<void> {
    const m = /^\/app\/installations\/(\d+)(\/access_tokens)?\/?$/.exec(path);
    const route = m && (m[2] ? method === 'POST' : method === 'GET') ? (m[2] ? 'token' : 'installation') : undefined;
    if (!token || (scheme !== 'bearer' && scheme !== 'token')) throw githubError(401, 'A JSON web token could not be decoded', DOCS.apps);
    let app;
    try {
      app = verifyAppJwt(token, this.apps);
    } catch (err) {
      if (err instanceof JwtError) throw githubError(401, err.message, DOCS.apps);
      throw err;
    }
    if (!route || !m) throw notFound(DOCS.apps);
    const installationId = Number(m[1]);
    const inst = app.installations.find((i) => i.id === installationId);
    if (!inst) throw notFound(DOCS.apps);
    const defaultPermissions = { actions: 'read', administration: 'write', metadata: 'read', organization_self_hosted_runners: 'write' };
    if (route === 'installation') {
      return this.sendJson(res, 200, this.installationView(app.appId, inst, defaultPermissions));
    }
    const body = await this.readBody(req);
    if (body !== undefined && !isRecord(body)) throw githubError(422, 'Invalid request.', DOCS.apps, { errors: [] });
    const repositories = isRecord(body) && Array.isArray(body['repositories']) ? (body['repositories'] as unknown[]).map(String) : undefined;
    const permissions = isRecord(body) && isRecord(body['permissions']) ? body['permissions'] : defaultPermissions;
    const { token: t, expiresAt } = this.state.issueInstallationToken(inst.id, inst.account, repositories);
    this.sendJson(res, 201, {
      token: t,
      expires_at: isoSeconds(expiresAt),
      permissions,
      repository_selection: repositories ? 'selected' : 'all',
    });
  }

  private installationView(appId: number, inst: { id: number; account: string }, permissions: Record<string, string>): Record<string, unknown> {
    const isOrg = this.opts.orgs === undefined || this.opts.orgs.some((o) => o.toLowerCase() === inst.account.toLowerCase());
    const login = inst.account;
    const userUrl = `${this.url}/users/${login}`;
    const accountId = numericId(login);
    return {
      id: inst.id,
      account: {
        login,
        id: accountId,
        node_id: Buffer.from(`04:User${accountId}`).toString('base64'),
        avatar_url: `https://avatars.githubusercontent.com/u/${accountId}?v=4`,
        gravatar_id: '',
        url: userUrl,
        html_url: `https://github.com/${login}`,
        followers_url: `${userUrl}/followers`,
        following_url: `${userUrl}/following{/other_user}`,
        gists_url: `${userUrl}/gists{/gist_id}`,
        starred_url: `${userUrl}/starred{/owner}{/repo}`,
        subscriptions_url: `${userUrl}/subscriptions`,
        organizations_url: `${userUrl}/orgs`,
        repos_url: `${userUrl}/repos`,
        events_url: `${userUrl}/events{/privacy}`,
        received_events_url: `${userUrl}/received_events`,
        type: isOrg ? 'Organization' : 'User',
        user_view_type: 'public',
        site_admin: false,
      },
      repository_selection: 'all',
      access_tokens_url: `${this.url}/app/installations/${inst.id}/access_tokens`,
      repositories_url: `${this.url}/installation/repositories`,
      html_url: isOrg ? `https://github.com/organizations/${login}/settings/installations/${inst.id}` : `https://github.com/settings/installations/${inst.id}`,
      app_id: appId,
      app_slug: `ekiden-emulated-${appId}`,
      client_id: `Iv1.${createHash('sha256').update(String(appId)).digest('hex').slice(0, 16)}`,
      target_id: accountId,
      target_type: isOrg ? 'Organization' : 'User',
      permissions,
      events: ['workflow_job'],
      created_at: this.startedAt,
      updated_at: this.startedAt,
      single_file_name: null,
      has_multiple_single_files: false,
      single_file_paths: [],
      suspended_by: null,
      suspended_at: null,
    };
  }

  // ------------------------------------------------------------------ runner registration (config.sh)

  private async registration(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if ((req.method ?? '').toUpperCase() !== 'POST') throw notFound();
    const m = /^RemoteAuth\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const tokenInfo = m ? this.state.lookupRegistrationToken(m[1]!) : undefined;
    if (!tokenInfo) throw notFound();
    const body = (await this.readBody(req)) as Partial<RegistrationRequest> | undefined;
    if (!isRecord(body) || typeof body.url !== 'string') throw githubError(400, 'url is required', DOCS.runners);
    let scope: Scope | undefined;
    try {
      scope = scopeFromWebPath(new URL(body.url).pathname);
    } catch {
      scope = undefined;
    }
    if (!scope || scopeKey(scope) !== scopeKey(tokenInfo.scope)) throw notFound();
    scope = tokenInfo.scope;
    if (body.runner_event === 'remove') {
      if (typeof body.agent_id !== 'number') throw githubError(400, 'agent_id is required', DOCS.runners);
      try {
        this.state.deleteRunner(scope, body.agent_id);
      } catch (err) {
        if (err instanceof StateError && err.code === 'busy') throw githubError(422, err.message, DOCS.runners);
        if (!(err instanceof StateError && err.code === 'not-found')) throw err;
      }
      return this.sendJson(res, 204);
    }
    if (body.runner_event !== 'register' || tokenInfo.kind !== 'registration') throw notFound();
    if (typeof body.name !== 'string' || body.name.trim() === '') throw githubError(400, 'name is required', DOCS.runners);
    if (body.runner_group !== undefined && body.runner_group.toLowerCase() !== DEFAULT_GROUP.name.toLowerCase()) {
      throw githubError(404, `Could not find any self-hosted runner group named "${body.runner_group}".`, DOCS.runners);
    }
    const osLabel = OS_LABELS[(body.os ?? 'linux').toLowerCase()] ?? body.os ?? 'Linux';
    const archLabel = ARCH_LABELS[(body.arch ?? 'x64').toLowerCase()] ?? body.arch ?? 'X64';
    const custom = (Array.isArray(body.labels) ? body.labels : []).filter((l): l is string => typeof l === 'string' && l.trim() !== '');
    let created;
    try {
      created = this.state.createRunner({
        scope,
        name: body.name.trim(),
        labels: [
          { name: 'self-hosted', type: 'read-only' },
          { name: osLabel, type: 'read-only' },
          { name: archLabel, type: 'read-only' },
          ...custom.map((l) => ({ name: l.trim(), type: 'custom' as const })),
        ],
        jit: false,
        ephemeral: body.ephemeral === true,
        groupId: DEFAULT_GROUP.id,
        workFolder: typeof body.work_folder === 'string' && body.work_folder !== '' ? body.work_folder : '_work',
        os: osLabel,
        disableUpdate: body.disable_update === true,
        replace: body.replace === true,
      });
    } catch (err) {
      if (err instanceof StateError && err.code === 'conflict') throw githubError(409, `A runner exists with the same name ${body.name}.`, DOCS.runners);
      if (err instanceof StateError && err.code === 'busy') throw githubError(422, err.message, DOCS.runners);
      throw err;
    }
    const response: RegistrationResponse = { runner: { id: created.runner.id, name: created.runner.name }, files: created.files };
    this.sendJson(res, 201, response);
  }

  // ------------------------------------------------------------------ runner protocol

  private bearerRunner(req: IncomingMessage): number {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const id = m ? this.state.runnerIdForAccessToken(m[1]!) : undefined;
    if (id === undefined) throw new HttpError(401, 'The runner registration has been deleted from the server, or the access token is invalid.');
    return id;
  }

  private async runnerApi(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname.slice('/_emulator/runner-api'.length);
    const stateCall = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (err) {
        if (err instanceof StateError) {
          const status = { 'not-found': 404, conflict: 409, busy: 422, invalid: 400, forbidden: 403 }[err.code];
          throw new HttpError(status, err.message);
        }
        throw err;
      }
    };

    if (path === '/oauth2/token' && method === 'POST') {
      const body = (await this.readBody(req)) as Partial<TokenRequest> | undefined;
      const token =
        isRecord(body) && typeof body.client_id === 'string' && typeof body.client_secret === 'string'
          ? this.state.exchangeCredential(body.client_id, body.client_secret)
          : undefined;
      if (!token) throw new HttpError(401, 'The runner registration has been deleted from the server, or the credentials are invalid.');
      const response: TokenResponse = { access_token: token, token_type: 'Bearer', expires_in: 3600 };
      return this.sendJson(res, 200, response);
    }

    const runnerId = this.bearerRunner(req);
    if (path === '/sessions' && method === 'POST') {
      const body = (await this.readBody(req)) as Partial<SessionRequest> | undefined;
      const info = {
        os: isRecord(body) && typeof body.os === 'string' ? body.os : 'Linux',
        arch: isRecord(body) && typeof body.arch === 'string' ? body.arch : 'X64',
        version: isRecord(body) && typeof body.version === 'string' ? body.version : 'unknown',
      };
      const sessionId = stateCall(() => this.state.createSession(runnerId, info));
      const r = this.state.runnerById(runnerId)!;
      const response: SessionResponse = {
        session_id: sessionId,
        runner: { id: r.id, name: r.name, ephemeral: r.ephemeral },
        poll_timeout_ms: this.pollTimeoutMs,
      };
      return this.sendJson(res, 201, response);
    }

    let m = /^\/sessions\/([^/]+)(\/messages)?$/.exec(path);
    if (m) {
      const sessionId = decodeURIComponent(m[1]!);
      if (!m[2] && method === 'DELETE') {
        this.state.deleteSession(runnerId, sessionId);
        return this.sendJson(res, 204);
      }
      if (m[2] && method === 'GET') {
        if (!this.state.hasSession(runnerId, sessionId)) throw new HttpError(404, 'Session not found.');
        const requested = Number(url.searchParams.get('wait_ms') ?? this.pollTimeoutMs);
        const waitMs = Number.isFinite(requested) ? Math.max(0, Math.min(requested, this.pollTimeoutMs)) : this.pollTimeoutMs;
        const ac = new AbortController();
        const onClose = () => ac.abort();
        res.on('close', onClose);
        const msg = await this.state.poll(runnerId, waitMs, ac.signal);
        res.off('close', onClose);
        if (!this.state.runnerById(runnerId)) throw new HttpError(401, 'The runner registration has been deleted from the server.');
        if (!msg) return this.sendJson(res, 204);
        return this.sendJson(res, 200, msg);
      }
      throw new HttpError(404, 'Not Found');
    }

    m = /^\/jobs\/(\d+)\/(steps|complete)$/.exec(path);
    if (m && method === 'POST') {
      const jobId = Number(m[1]);
      const body = await this.readBody(req);
      if (!isRecord(body)) throw new HttpError(400, 'body must be a JSON object');
      if (m[2] === 'steps') {
        const report = body as unknown as StepReport;
        if (!Number.isInteger(report.number) || (report.status !== 'in_progress' && report.status !== 'completed')) {
          throw new HttpError(400, 'number and status are required');
        }
        stateCall(() => this.state.reportStep(runnerId, jobId, report));
        return this.sendJson(res, 204);
      }
      const conclusion = (body as Partial<CompleteRequest>).conclusion;
      const valid: JobConclusion[] = ['success', 'failure', 'cancelled'];
      if (!valid.includes(conclusion as JobConclusion)) throw new HttpError(400, `conclusion must be one of ${valid.join(', ')}`);
      const deleted = stateCall(() => this.state.completeJob(runnerId, jobId, conclusion as JobConclusion));
      const response: CompleteResponse = { runner_deleted: deleted };
      return this.sendJson(res, 200, response);
    }
    throw new HttpError(404, 'Not Found');
  }

  // ------------------------------------------------------------------ admin API

  private async admin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname.replace(/\/$/, '');
    const bad = (err: unknown): never => {
      throw new HttpError(400, err instanceof Error ? err.message : String(err));
    };
    if (path === '/_emulator/state' && method === 'GET') {
      return this.sendJson(res, 200, { url: this.url, runnerBaseUrl: this.runnerBaseUrl, runners: this.runners(), jobs: this.jobs(), faults: this.faults() });
    }
    if (path === '/_emulator/runners' && method === 'GET') return this.sendJson(res, 200, this.runners());
    if (path === '/_emulator/secrets' && method === 'GET') return this.sendJson(res, 200, this.secrets());
    if (path === '/_emulator/tokens' && method === 'POST') {
      const body = await this.readBody(req);
      if (!isRecord(body) || typeof body['token'] !== 'string' || body['token'] === '') return bad('token must be a non-empty string');
      this.addToken(body['token'] as string);
      return this.sendJson(res, 201, {});
    }
    if (path === '/_emulator/faults') {
      if (method === 'GET') return this.sendJson(res, 200, this.faults());
      if (method === 'DELETE') {
        this.clearFaults();
        return this.sendJson(res, 204);
      }
      if (method === 'POST') {
        const body = await this.readBody(req);
        let view: FaultView | undefined;
        try {
          view = this.injectFault(parseFault(body));
        } catch (err) {
          bad(err);
        }
        return this.sendJson(res, 201, view);
      }
    }
    if (path === '/_emulator/jobs') {
      if (method === 'GET') return this.sendJson(res, 200, this.jobs());
      if (method === 'POST') {
        const body = await this.readBody(req);
        let job: EmulatorJob | undefined;
        try {
          job = this.queueJob(parseJobSpec(body));
        } catch (err) {
          bad(err);
        }
        return this.sendJson(res, 201, job);
      }
    }
    const m = /^\/_emulator\/jobs\/(\d+)(\/cancel)?$/.exec(path);
    if (m) {
      const id = Number(m[1]);
      if (!m[2] && method === 'GET') {
        const job = this.job(id);
        if (!job) throw new HttpError(404, 'Not Found');
        return this.sendJson(res, 200, job);
      }
      if (m[2] && method === 'POST') {
        if (!this.job(id)) throw new HttpError(404, 'Not Found');
        return this.sendJson(res, 200, this.cancelJob(id));
      }
    }
    throw new HttpError(404, 'Not Found');
  }
}
