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
 *
 * This file is the server: start/stop, the in-process API, REST authentication, rate limits
 * and faults (limits.ts), and the routing table. The endpoints live in routes/ — runners,
 * registration, jobs (the runner protocol), apps and admin — on the shared plumbing of http.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { parsePublicKey } from './jwt.js';
import { WebhookSender, type WebhookTarget } from './webhooks.js';
import { EmulatorState, isoSeconds, type EmulatorJob, type EmulatorRunner, type JobSpec, type Scope, type StateEvents, type TokenInfo } from './state.js';
import { DOCS, HttpError, githubError, notFound, parseAuthorization, sendError, sendJson } from './http.js';
import { Faults, RateLimits, failWith, rateLimitedMessage, setRateHeaders, type FaultSpec, type FaultView } from './limits.js';
import { ADMIN_HEADER, ADMIN_PREFIX, adminApi, parseJobSpec } from './routes/admin.js';
import { appApi, type AppsContext } from './routes/apps.js';
import { RUNNER_API_PREFIX, runnerApi, type RunnerApiContext } from './routes/jobs.js';
import { issueRegistrationToken, runnerRegistration } from './routes/registration.js';
import { deleteRunner, generateJitConfig, getRunner, listRunnerGroups, listRunners, type GroupScope } from './routes/runners.js';

export type { EmulatorJob, EmulatorJobStep, EmulatorRunner, JobEvent, JobSpec, RunnerEvent, RunnerLabel, RunnerView } from './state.js';
export type { FaultKind, FaultSpec, FaultView } from './limits.js';
export { parseJobSpec };

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

type Context = AppsContext & RunnerApiContext;

/** A REST request under `/{repos/o/r | orgs/o | enterprises/e}/actions/`, authenticated. */
interface ScopedCall {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  scope: Scope;
  /** The match of the route's `action` against the path after `actions/`. */
  match: RegExpExecArray;
}

interface ScopedRoute {
  method: string;
  action: RegExp;
  /** Scope kinds it exists for (others 404 before any scope check); default all. */
  kinds?: ReadonlyArray<Scope['kind']>;
  handle: (ctx: Context, call: ScopedCall) => void | Promise<void>;
}

/** The scoped REST endpoints, first match wins; anything else is a 404. */
const SCOPED_ROUTES: ScopedRoute[] = [
  { method: 'GET', action: /^runners$/, handle: (ctx, c) => listRunners(ctx, c.req, c.res, c.url, c.scope) },
  { method: 'POST', action: /^runners\/registration-token$/, handle: (ctx, c) => issueRegistrationToken(ctx, c.res, c.scope, 'registration') },
  { method: 'POST', action: /^runners\/remove-token$/, handle: (ctx, c) => issueRegistrationToken(ctx, c.res, c.scope, 'remove') },
  { method: 'POST', action: /^runners\/generate-jitconfig$/, handle: (ctx, c) => generateJitConfig(ctx, c.req, c.res, c.scope) },
  { method: 'GET', action: /^runners\/(\d+)$/, handle: (ctx, c) => getRunner(ctx, c.res, c.scope, Number(c.match[1])) },
  { method: 'DELETE', action: /^runners\/(\d+)$/, handle: (ctx, c) => deleteRunner(ctx, c.res, c.scope, Number(c.match[1])) },
  { method: 'GET', action: /^runner-groups$/, kinds: ['org', 'enterprise'], handle: (ctx, c) => listRunnerGroups(ctx, c.res, c.scope as GroupScope) },
];

/** Where `config.sh` registers and removes runners (also under GHES's `/api/v3`). */
const REGISTRATION_PATHS = new Set(['/actions/runner-registration', '/api/v3/actions/runner-registration']);

/** Rate-limit bucket of the non-REST endpoints (runner protocol, admin API, registration). */
const INTERNAL_BUCKET = { key: 'emulator-internal', limit: 1_000_000 };

export class GitHubEmulator extends EventEmitter<StateEvents> {
  private readonly opts: GitHubEmulatorOptions;
  private readonly state: EmulatorState;
  private readonly ctx: Context;
  private readonly offlineAfterMs: number;
  private readonly pollTimeoutMs: number;
  private readonly rateLimit: number;
  private readonly limits = new RateLimits();
  private readonly injectedFaults = new Faults();
  private server: Server | undefined;
  private ownUrl: string | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly startedAt = isoSeconds();
  /** Signed `workflow_job` webhook deliveries of job events (see webhooks.ts). */
  readonly webhooks: WebhookSender;

  /** Per-run secret for the admin API (`X-Emulator-Admin`); in-process callers need none. */
  readonly adminToken: string;

  constructor(opts: GitHubEmulatorOptions = {}) {
    super();
    this.opts = opts;
    this.adminToken = randomBytes(24).toString('base64url');
    this.offlineAfterMs = opts.offlineAfterMs ?? 5000;
    this.pollTimeoutMs = Math.max(10, Math.min(opts.pollTimeoutMs ?? 20_000, this.offlineAfterMs));
    this.rateLimit = opts.rateLimit ?? 5000;
    this.state = new EmulatorState({ offlineAfterMs: this.offlineAfterMs, runnerBaseUrl: () => this.runnerBaseUrl });
    for (const t of opts.tokens ?? []) this.state.addPat(t);
    this.ctx = {
      state: this.state,
      url: () => this.url,
      pollTimeoutMs: this.pollTimeoutMs,
      apps: (opts.apps ?? []).map((a) => ({ appId: a.appId, publicKey: parsePublicKey(a.publicKeyPem), installations: a.installations })),
      isOrg: (login) => this.opts.orgs === undefined || this.opts.orgs.some((o) => o.toLowerCase() === login.toLowerCase()),
      startedAt: this.startedAt,
    };
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
        if (!res.headersSent) sendJson(res, 500, { message: `Server Error: ${(err as Error).message}` });
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
    return this.injectedFaults.inject(spec);
  }

  clearFaults(): void {
    this.injectedFaults.clear();
  }

  faults(): FaultView[] {
    return this.injectedFaults.views();
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

  // ------------------------------------------------------------------ routing

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = [4, 4, 6, 6, 8].map((n) => randomBytes(n / 2).toString('hex').toUpperCase()).join(':');
    res.setHeader('x-github-request-id', requestId);
    res.setHeader('x-github-api-version-selected', '2022-11-28');
    res.setHeader('x-github-media-type', 'github.v3; format=json');
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    const path = url.pathname;
    const internal = () => setRateHeaders(res, this.limits.bucket(INTERNAL_BUCKET.key, INTERNAL_BUCKET.limit));
    try {
      if (path.startsWith(`${RUNNER_API_PREFIX}/`)) {
        internal();
        await runnerApi(this.ctx, req, res, url);
      } else if (path === ADMIN_PREFIX || path.startsWith(`${ADMIN_PREFIX}/`)) {
        internal();
        // Another local user must not read the issued secrets or mint tokens: a per-run secret.
        if (!sameSecret(req.headers[ADMIN_HEADER], this.adminToken)) {
          throw new HttpError(401, `the emulator's admin API needs the header ${ADMIN_HEADER} with this emulator's admin token`);
        }
        await adminApi(this, req, res, url);
      } else if (REGISTRATION_PATHS.has(path)) {
        internal();
        await runnerRegistration(this.ctx, req, res);
      } else {
        await this.rest(req, res, url, requestId);
      }
    } catch (err) {
      if (err instanceof HttpError) sendError(res, err);
      else throw err;
    }
  }

  /** The REST API: faults, credentials, rate limit, then the App endpoints or a scoped route. */
  private async rest(req: IncomingMessage, res: ServerResponse, url: URL, requestId: string): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname;
    const { token, scheme } = parseAuthorization(req);
    const isApp = path.startsWith('/app/') || path === '/app';
    const info = token && !isApp && (scheme === 'token' || scheme === 'bearer') ? this.state.lookupToken(token) : undefined;
    const bucket = info && token ? this.limits.bucket(`token:${token}`, this.rateLimit) : this.limits.bucket(`anon:${token ?? ''}`, isApp ? this.rateLimit : 60);

    const fault = this.injectedFaults.take(method, path);
    if (fault?.kind === 'delay') await sleep(fault.delayMs ?? 1000);
    else if (fault) failWith(fault, res, bucket, info, req, requestId);

    if (isApp) {
      bucket.used++;
      setRateHeaders(res, bucket);
      return appApi(this.ctx, req, res, method, path, token, scheme);
    }
    if (!info) {
      setRateHeaders(res, bucket);
      throw githubError(401, 'Bad credentials', DOCS.root);
    }
    if (bucket.used >= bucket.limit) {
      setRateHeaders(res, bucket);
      throw githubError(403, rateLimitedMessage(info, req, requestId), DOCS.rate);
    }
    bucket.used++;
    setRateHeaders(res, bucket);

    const m = /^\/(repos\/[^/]+\/[^/]+|orgs\/[^/]+|enterprises\/[^/]+)\/actions\/(.+?)\/?$/.exec(path);
    if (!m) throw notFound();
    const [kind, a, b] = m[1]!.split('/').map(decodeURIComponent);
    const scope: Scope =
      kind === 'repos' ? { kind: 'repo', owner: a!, repo: b! } : kind === 'orgs' ? { kind: 'org', org: a! } : { kind: 'enterprise', enterprise: a! };
    const action = m[2]!;
    for (const route of SCOPED_ROUTES) {
      if (route.method !== method || (route.kinds && !route.kinds.includes(scope.kind))) continue;
      const match = route.action.exec(action);
      if (!match) continue;
      this.checkScope(scope, info);
      return route.handle(this.ctx, { req, res, url, scope, match });
    }
    throw notFound();
  }

  private repoExists(repo: string): boolean {
    const list = this.opts.repos;
    return list === undefined || list.some((r) => r.toLowerCase() === repo.toLowerCase());
  }

  /** 404 for a scope that does not exist or an installation token cannot see; 403 for an installation on an enterprise. */
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
}

/** Constant-time comparison of a presented secret with the expected one. */
function sameSecret(presented: string | string[] | undefined, expected: string): boolean {
  if (typeof presented !== 'string') return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
