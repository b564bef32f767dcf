/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * The GitHub emulator's model, free of HTTP: scopes, credentials, runners (with their
 * secrets and sessions), jobs and the dispatch of queued jobs to polling runners.
 * `server.ts` maps HTTP onto it.
 */
import { EventEmitter } from 'node:events';
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type {
  JitConfigFiles,
  JobConclusion,
  RunnerCredentialsFile,
  RunnerMessage,
  RunnerRsaParamsFile,
  RunnerSettingsFile,
  StepReport,
} from './protocol.js';

export type Scope =
  | { kind: 'repo'; owner: string; repo: string }
  | { kind: 'org'; org: string }
  | { kind: 'enterprise'; enterprise: string };

/** `repos/owner/repo` | `orgs/org` | `enterprises/name`, as written (not lower-cased). */
export function scopeName(scope: Scope): string {
  switch (scope.kind) {
    case 'repo':
      return `repos/${scope.owner}/${scope.repo}`;
    case 'org':
      return `orgs/${scope.org}`;
    case 'enterprise':
      return `enterprises/${scope.enterprise}`;
  }
}

/** GitHub logins and repo names are case-insensitive. */
export function scopeKey(scope: Scope): string {
  return scopeName(scope).toLowerCase();
}

/** Path of the scope on the web (`owner/repo`, `org`, `enterprises/name`), as used in `config.sh --url`. */
export function scopeWebPath(scope: Scope): string {
  switch (scope.kind) {
    case 'repo':
      return `${scope.owner}/${scope.repo}`;
    case 'org':
      return scope.org;
    case 'enterprise':
      return `enterprises/${scope.enterprise}`;
  }
}

/** Parses the path of a repo/org/enterprise web URL (`/owner/repo`, `/org`, `/enterprises/e`). */
export function scopeFromWebPath(pathname: string): Scope | undefined {
  const parts = pathname.split('/').filter((p) => p.length > 0).map(decodeURIComponent);
  if (parts.length === 2 && parts[0] === 'enterprises') return { kind: 'enterprise', enterprise: parts[1]! };
  if (parts.length === 2) return { kind: 'repo', owner: parts[0]!, repo: parts[1]! };
  if (parts.length === 1) return { kind: 'org', org: parts[0]! };
  return undefined;
}

export interface RunnerLabel {
  id: number;
  name: string;
  type: 'read-only' | 'custom';
}

/** A runner as GitHub's REST API shows it. */
export interface RunnerView {
  id: number;
  name: string;
  os: string;
  status: 'online' | 'offline';
  busy: boolean;
  ephemeral: boolean;
  runner_group_id: number;
  labels: RunnerLabel[];
  version: string | null;
}

/** A runner with the emulator's bookkeeping (admin API and in-process access). */
export interface EmulatorRunner extends RunnerView {
  /** `repos/owner/repo`, `orgs/org` or `enterprises/name`. */
  scope: string;
  jit: boolean;
  /** Job it is running, if any. */
  job_id: number | null;
  created_at: string;
}

export interface JobSpec {
  /** `owner/repo` */
  repo: string;
  labels: string[];
  steps: Array<{ name?: string; run: string }>;
  name?: string;
}

export interface EmulatorJobStep {
  number: number;
  name: string;
  run: string;
  status: 'queued' | 'in_progress' | 'completed';
  conclusion: JobConclusion | 'skipped' | null;
  exit_code: number | null;
  started_at: string | null;
  completed_at: string | null;
  /** Tail of the step's output as the runner reported it. */
  log: string;
}

/** A job, shaped like the `workflow_job` webhook payload's object plus the steps to run. */
export interface EmulatorJob {
  id: number;
  run_id: number;
  name: string;
  workflow_name: string;
  repo: string;
  head_branch: string;
  labels: string[];
  status: 'queued' | 'in_progress' | 'completed';
  conclusion: JobConclusion | null;
  runner_id: number | null;
  runner_name: string | null;
  runner_group_id: number | null;
  runner_group_name: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  steps: EmulatorJobStep[];
  /** Why the server ended the job (runner lost, cancelled while queued), else null. */
  failure_reason: string | null;
}

export interface JobEvent {
  action: 'queued' | 'in_progress' | 'completed';
  job: EmulatorJob;
}

export interface RunnerEvent {
  action: 'created' | 'online' | 'offline' | 'deleted';
  runner: EmulatorRunner;
}

export interface StateEvents {
  job: [JobEvent];
  runner: [RunnerEvent];
}

interface Waiter {
  resolve: (msg: RunnerMessage | null) => void;
}

interface RunnerRec {
  id: number;
  name: string;
  scope: Scope;
  os: string;
  version: string | null;
  ephemeral: boolean;
  jit: boolean;
  groupId: number;
  labels: RunnerLabel[];
  clientId: string;
  secret: string;
  createdAt: string;
  sessionId: string | null;
  activePolls: number;
  lastSeen: number;
  online: boolean;
  jobId: number | null;
  inbox: RunnerMessage[];
  waiter: Waiter | null;
  deleted: boolean;
}

interface JobRec extends EmulatorJob {
  cancelRequested: boolean;
}

export interface TokenInfo {
  kind: 'pat' | 'installation';
  installationId?: number;
  /** Installation account: the token reaches only this org/user's scopes. */
  account?: string;
  /** Installation tokens restricted to these repository names. */
  repositories?: string[];
  expiresAt?: number;
}

export interface RegistrationTokenInfo {
  kind: 'registration' | 'remove';
  scope: Scope;
  expiresAt: number;
}

export class StateError extends Error {
  override readonly name = 'StateError';
  constructor(
    readonly code: 'not-found' | 'conflict' | 'busy' | 'invalid' | 'forbidden',
    message: string,
  ) {
    super(message);
  }
}

export interface StateOptions {
  offlineAfterMs: number;
  /** URL runners use to reach the emulator (written into `.runner` as serverUrl). */
  runnerBaseUrl: () => string;
}

const HOUR_MS = 3600_000;
const DEFAULT_GROUP = { id: 1, name: 'Default' };

export function isoSeconds(ms: number = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function randomAlnum(length: number, alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[bytes[i]! % alphabet.length];
  return out;
}

function equalSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class EmulatorState extends EventEmitter<StateEvents> {
  private readonly runnersById = new Map<number, RunnerRec>();
  private readonly jobsById = new Map<number, JobRec>();
  private readonly labelIds = new Map<string, number>();
  private readonly pats = new Set<string>();
  private readonly installationTokens = new Map<string, TokenInfo>();
  private readonly registrationTokens = new Map<string, RegistrationTokenInfo>();
  private readonly accessTokens = new Map<string, number>();
  private readonly issued = new Set<string>();
  private runnerSeq = 0;
  private jobSeq = 1000;
  private runSeq = 500;

  constructor(private readonly opts: StateOptions) {
    super();
  }

  // ---------------------------------------------------------------- credentials

  addPat(token: string): void {
    this.pats.add(token);
    this.issued.add(token);
  }

  lookupToken(token: string, now = Date.now()): TokenInfo | undefined {
    if (this.pats.has(token)) return { kind: 'pat' };
    const inst = this.installationTokens.get(token);
    if (inst && (inst.expiresAt ?? Infinity) > now) return inst;
    return undefined;
  }

  issueInstallationToken(installationId: number, account: string, repositories?: string[]): { token: string; expiresAt: number } {
    const token = `ghs_${randomAlnum(36, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789')}`;
    const expiresAt = Date.now() + HOUR_MS;
    this.installationTokens.set(token, { kind: 'installation', installationId, account, repositories, expiresAt });
    this.issued.add(token);
    return { token, expiresAt };
  }

  issueRegistrationToken(kind: 'registration' | 'remove', scope: Scope): { token: string; expiresAt: number } {
    const token = randomAlnum(29);
    const expiresAt = Date.now() + HOUR_MS;
    this.registrationTokens.set(token, { kind, scope, expiresAt });
    this.issued.add(token);
    return { token, expiresAt };
  }

  lookupRegistrationToken(token: string, now = Date.now()): RegistrationTokenInfo | undefined {
    const info = this.registrationTokens.get(token);
    return info && info.expiresAt > now ? info : undefined;
  }

  /** Every secret the emulator issued or accepts, for leak scans. */
  secrets(): string[] {
    return [...this.issued];
  }

  // ---------------------------------------------------------------- runners

  private labelId(name: string): number {
    const key = name.toLowerCase();
    let id = this.labelIds.get(key);
    if (id === undefined) {
      id = this.labelIds.size + 1;
      this.labelIds.set(key, id);
    }
    return id;
  }

  private makeLabels(names: Array<{ name: string; type: 'read-only' | 'custom' }>): RunnerLabel[] {
    const seen = new Set<string>();
    const out: RunnerLabel[] = [];
    for (const l of names) {
      const key = l.name.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ id: this.labelId(l.name), name: l.name, type: l.type });
    }
    return out;
  }

  private isOnline(r: RunnerRec, now = Date.now()): boolean {
    return r.sessionId !== null && (r.activePolls > 0 || now - r.lastSeen < this.opts.offlineAfterMs);
  }

  private view(r: RunnerRec): EmulatorRunner {
    return {
      id: r.id,
      name: r.name,
      os: r.os,
      status: r.online ? 'online' : 'offline',
      busy: r.jobId !== null,
      ephemeral: r.ephemeral,
      runner_group_id: r.groupId,
      labels: r.labels.map((l) => ({ ...l })),
      version: r.version,
      scope: scopeName(r.scope),
      jit: r.jit,
      job_id: r.jobId,
      created_at: r.createdAt,
    };
  }

  /** REST shape (drops the emulator's bookkeeping fields). */
  static restView(r: EmulatorRunner): RunnerView {
    return {
      id: r.id,
      name: r.name,
      os: r.os,
      status: r.status,
      busy: r.busy,
      ephemeral: r.ephemeral,
      runner_group_id: r.runner_group_id,
      labels: r.labels,
      version: r.version,
    };
  }

  runners(scope?: Scope): EmulatorRunner[] {
    const key = scope ? scopeKey(scope) : undefined;
    return [...this.runnersById.values()].filter((r) => key === undefined || scopeKey(r.scope) === key).map((r) => this.view(r));
  }

  runner(scope: Scope, id: number): EmulatorRunner | undefined {
    const r = this.runnersById.get(id);
    return r && scopeKey(r.scope) === scopeKey(scope) ? this.view(r) : undefined;
  }

  runnerById(id: number): EmulatorRunner | undefined {
    const r = this.runnersById.get(id);
    return r ? this.view(r) : undefined;
  }

  private findByName(scope: Scope, name: string): RunnerRec | undefined {
    const key = scopeKey(scope);
    const lname = name.toLowerCase();
    for (const r of this.runnersById.values()) if (scopeKey(r.scope) === key && r.name.toLowerCase() === lname) return r;
    return undefined;
  }

  /** Creates a runner and the files a runner needs to authenticate as it. */
  createRunner(input: {
    scope: Scope;
    name: string;
    labels: Array<{ name: string; type: 'read-only' | 'custom' }>;
    jit: boolean;
    ephemeral: boolean;
    groupId: number;
    workFolder: string;
    os: string;
    disableUpdate?: boolean;
    replace?: boolean;
  }): { runner: EmulatorRunner; files: JitConfigFiles } {
    const existing = this.findByName(input.scope, input.name);
    if (existing) {
      if (!input.replace) throw new StateError('conflict', `Already exists - A runner with the name ${input.name} already exists.`);
      this.deleteRunner(input.scope, existing.id);
    }
    const id = ++this.runnerSeq;
    const rec: RunnerRec = {
      id,
      name: input.name,
      scope: input.scope,
      os: input.os,
      version: null,
      ephemeral: input.ephemeral,
      jit: input.jit,
      groupId: input.groupId,
      labels: this.makeLabels(input.labels),
      clientId: randomUUID(),
      secret: randomBytes(32).toString('base64'),
      createdAt: isoSeconds(),
      sessionId: null,
      activePolls: 0,
      lastSeen: 0,
      online: false,
      jobId: null,
      inbox: [],
      waiter: null,
      deleted: false,
    };
    this.runnersById.set(id, rec);
    const base = this.opts.runnerBaseUrl().replace(/\/$/, '');
    const settings: RunnerSettingsFile = {
      agentId: id,
      agentName: rec.name,
      poolId: rec.groupId,
      poolName: DEFAULT_GROUP.name,
      serverUrl: base,
      gitHubUrl: `${base}/${scopeWebPath(rec.scope)}`,
      workFolder: input.workFolder,
      ephemeral: rec.ephemeral,
      disableUpdate: input.disableUpdate ?? false,
      isHostedServer: false,
      useV2Flow: true,
    };
    const credentials: RunnerCredentialsFile = {
      scheme: 'OAuth',
      data: { clientId: rec.clientId, authorizationUrl: `${base}/_emulator/runner-api/oauth2/token`, requireFipsCryptography: 'False' },
    };
    const rnd = (n: number) => randomBytes(n).toString('base64');
    const rsa: RunnerRsaParamsFile = {
      d: rec.secret,
      dp: rnd(128),
      dq: rnd(128),
      exponent: 'AQAB',
      inverseQ: rnd(128),
      modulus: rnd(256),
      p: rnd(128),
      q: rnd(128),
    };
    const rsaText = JSON.stringify(rsa);
    const files: JitConfigFiles = {
      '.runner': b64(JSON.stringify(settings, null, 2)),
      '.credentials': b64(JSON.stringify(credentials, null, 2)),
      '.credentials_rsaparams': b64(rsaText),
    };
    for (const s of [rec.clientId, rec.secret, rsaText, files['.credentials'], files['.credentials_rsaparams']]) this.issued.add(s);
    const runner = this.view(rec);
    this.emit('runner', { action: 'created', runner });
    return { runner, files };
  }

  /** Records an encoded JIT config as a secret (it carries the runner's credentials). */
  noteSecret(value: string): void {
    this.issued.add(value);
  }

  deleteRunner(scope: Scope, id: number): void {
    const r = this.runnersById.get(id);
    if (!r || scopeKey(r.scope) !== scopeKey(scope)) throw new StateError('not-found', 'Not Found');
    if (r.jobId !== null) throw new StateError('busy', `Bad request - Runner "${r.name}" is still running a job"`);
    this.removeRunner(r);
  }

  private removeRunner(r: RunnerRec): void {
    r.deleted = true;
    r.sessionId = null;
    r.online = false;
    this.runnersById.delete(r.id);
    for (const [token, runnerId] of this.accessTokens) if (runnerId === r.id) this.accessTokens.delete(token);
    const w = r.waiter;
    r.waiter = null;
    w?.resolve(null);
    this.emit('runner', { action: 'deleted', runner: this.view(r) });
  }

  // ---------------------------------------------------------------- runner protocol

  /** OAuth client-credentials exchange with the secret from the runner's config. */
  exchangeCredential(clientId: string, secret: string): string | undefined {
    for (const r of this.runnersById.values()) {
      if (r.clientId === clientId && equalSecret(r.secret, secret)) {
        const token = randomBytes(24).toString('base64url');
        this.accessTokens.set(token, r.id);
        this.issued.add(token);
        return token;
      }
    }
    return undefined;
  }

  /** The runner an access token belongs to, if it still exists. */
  runnerIdForAccessToken(token: string): number | undefined {
    const id = this.accessTokens.get(token);
    return id !== undefined && this.runnersById.has(id) ? id : undefined;
  }

  createSession(runnerId: number, info: { os: string; arch: string; version: string }): string {
    const r = this.mustRunner(runnerId);
    if (r.sessionId !== null && this.isOnline(r)) throw new StateError('conflict', 'A session for this runner already exists.');
    r.sessionId = randomUUID();
    r.lastSeen = Date.now();
    r.version = info.version;
    if (!r.jit || r.os === 'unknown') r.os = info.os;
    if (!r.online) {
      r.online = true;
      this.emit('runner', { action: 'online', runner: this.view(r) });
    }
    return r.sessionId;
  }

  deleteSession(runnerId: number, sessionId: string): void {
    const r = this.runnersById.get(runnerId);
    if (!r || r.sessionId !== sessionId) return;
    r.sessionId = null;
    this.goOffline(r, 'The runner went offline while running the job.');
  }

  hasSession(runnerId: number, sessionId: string): boolean {
    return this.runnersById.get(runnerId)?.sessionId === sessionId;
  }

  /**
   * Long poll: resolves with the next message for the runner, or null after waitMs (or when
   * `signal` aborts, or the runner is deleted). An open poll keeps the runner online.
   */
  async poll(runnerId: number, waitMs: number, signal: AbortSignal): Promise<RunnerMessage | null> {
    const r = this.mustRunner(runnerId);
    r.activePolls++;
    r.lastSeen = Date.now();
    try {
      const ready = r.inbox.shift() ?? this.takeJob(r);
      if (ready) return ready;
      if (r.waiter) r.waiter.resolve(null);
      return await new Promise<RunnerMessage | null>((resolve) => {
        let done = false;
        const finish = (msg: RunnerMessage | null) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          if (r.waiter === waiter) r.waiter = null;
          resolve(msg);
        };
        const onAbort = () => finish(null);
        const waiter: Waiter = { resolve: finish };
        const timer = setTimeout(() => finish(null), waitMs);
        r.waiter = waiter;
        signal.addEventListener('abort', onAbort);
        if (signal.aborted) finish(null);
      });
    } finally {
      r.activePolls--;
      r.lastSeen = Date.now();
    }
  }

  private deliver(r: RunnerRec, msg: RunnerMessage): void {
    const w = r.waiter;
    if (w) {
      r.waiter = null;
      w.resolve(msg);
    } else {
      r.inbox.push(msg);
    }
  }

  private eligible(r: RunnerRec, job: JobRec): boolean {
    if (r.deleted || r.sessionId === null || r.jobId !== null) return false;
    const [owner] = job.repo.split('/');
    const s = r.scope;
    const scopeOk =
      s.kind === 'repo'
        ? `${s.owner}/${s.repo}`.toLowerCase() === job.repo.toLowerCase()
        : s.kind === 'org'
          ? s.org.toLowerCase() === owner!.toLowerCase()
          : true;
    if (!scopeOk) return false;
    const have = new Set(r.labels.map((l) => l.name.toLowerCase()));
    return job.labels.every((l) => have.has(l.toLowerCase()));
  }

  private takeJob(r: RunnerRec): RunnerMessage | undefined {
    for (const job of this.jobsById.values()) {
      if (job.status === 'queued' && this.eligible(r, job)) return this.assign(job, r);
    }
    return undefined;
  }

  private assign(job: JobRec, r: RunnerRec): RunnerMessage {
    job.status = 'in_progress';
    job.started_at = isoSeconds();
    job.runner_id = r.id;
    job.runner_name = r.name;
    job.runner_group_id = r.groupId;
    job.runner_group_name = DEFAULT_GROUP.name;
    r.jobId = job.id;
    this.emit('job', { action: 'in_progress', job: this.jobView(job) });
    return {
      type: 'job',
      job: {
        id: job.id,
        run_id: job.run_id,
        name: job.name,
        repo: job.repo,
        labels: [...job.labels],
        steps: job.steps.map((s) => ({ number: s.number, name: s.name, run: s.run })),
      },
    };
  }

  /** Hands queued jobs to runners that are waiting in a poll. */
  private dispatch(): void {
    for (const r of this.runnersById.values()) {
      if (!r.waiter || r.jobId !== null) continue;
      const msg = this.takeJob(r);
      if (msg) this.deliver(r, msg);
    }
  }

  reportStep(runnerId: number, jobId: number, report: StepReport): void {
    const job = this.jobOfRunner(runnerId, jobId);
    const step = job.steps[report.number - 1];
    if (!step) throw new StateError('invalid', `Unknown step ${report.number}`);
    const now = isoSeconds();
    if (report.status === 'in_progress') {
      step.status = 'in_progress';
      step.started_at = now;
    } else {
      step.status = 'completed';
      step.started_at ??= now;
      step.completed_at = now;
      step.conclusion = report.conclusion ?? null;
      step.exit_code = report.exit_code ?? null;
    }
    if (typeof report.log === 'string') step.log = report.log.slice(-65536);
  }

  /** The runner reports its job's outcome. Returns whether the (ephemeral) runner was removed. */
  completeJob(runnerId: number, jobId: number, conclusion: JobConclusion): boolean {
    const job = this.jobOfRunner(runnerId, jobId);
    const r = this.mustRunner(runnerId);
    this.finish(job, conclusion, null);
    if (r.jobId === jobId) r.jobId = null;
    if (r.ephemeral) {
      this.removeRunner(r);
      return true;
    }
    this.dispatch();
    return false;
  }

  private jobOfRunner(runnerId: number, jobId: number): JobRec {
    const job = this.jobsById.get(jobId);
    if (!job || job.runner_id !== runnerId) throw new StateError('not-found', 'Not Found');
    if (job.status === 'completed') throw new StateError('conflict', `Job ${jobId} has already completed (${job.conclusion}).`);
    return job;
  }

  private mustRunner(id: number): RunnerRec {
    const r = this.runnersById.get(id);
    if (!r) throw new StateError('not-found', 'The runner registration has been deleted from the server.');
    return r;
  }

  /** Marks runners offline whose stand-in stopped polling; fails the jobs they held. */
  sweep(now = Date.now()): void {
    for (const r of [...this.runnersById.values()]) {
      if (r.online && !this.isOnline(r, now)) {
        r.sessionId = null;
        this.goOffline(r, 'The self-hosted runner lost communication with the server.');
      }
    }
  }

  private goOffline(r: RunnerRec, reason: string): void {
    if (r.jobId !== null) {
      const job = this.jobsById.get(r.jobId);
      r.jobId = null;
      if (job && job.status !== 'completed') this.finish(job, job.cancelRequested ? 'cancelled' : 'failure', reason);
    }
    r.inbox = [];
    if (r.online) {
      r.online = false;
      this.emit('runner', { action: 'offline', runner: this.view(r) });
    }
  }

  // ---------------------------------------------------------------- jobs

  queueJob(spec: JobSpec): EmulatorJob {
    const id = ++this.jobSeq;
    const name = spec.name ?? 'build';
    const job: JobRec = {
      id,
      run_id: ++this.runSeq,
      name,
      workflow_name: 'CI',
      repo: spec.repo,
      head_branch: 'main',
      labels: [...spec.labels],
      status: 'queued',
      conclusion: null,
      runner_id: null,
      runner_name: null,
      runner_group_id: null,
      runner_group_name: null,
      created_at: isoSeconds(),
      started_at: null,
      completed_at: null,
      steps: spec.steps.map((s, i) => ({
        number: i + 1,
        name: s.name ?? `Run ${s.run.split('\n')[0]!.slice(0, 40)}`,
        run: s.run,
        status: 'queued',
        conclusion: null,
        exit_code: null,
        started_at: null,
        completed_at: null,
        log: '',
      })),
      failure_reason: null,
      cancelRequested: false,
    };
    this.jobsById.set(id, job);
    this.emit('job', { action: 'queued', job: this.jobView(job) });
    this.dispatch();
    return this.jobView(job);
  }

  cancelJob(id: number): EmulatorJob {
    const job = this.jobsById.get(id);
    if (!job) throw new StateError('not-found', 'Not Found');
    if (job.status === 'queued') {
      this.finish(job, 'cancelled', 'The job was cancelled before a runner picked it up.');
    } else if (job.status === 'in_progress' && !job.cancelRequested) {
      job.cancelRequested = true;
      const r = job.runner_id === null ? undefined : this.runnersById.get(job.runner_id);
      if (r) this.deliver(r, { type: 'job-cancel', job_id: job.id });
    }
    return this.jobView(job);
  }

  private finish(job: JobRec, conclusion: JobConclusion, reason: string | null): void {
    job.status = 'completed';
    job.conclusion = conclusion;
    job.completed_at = isoSeconds();
    job.failure_reason = reason;
    for (const s of job.steps) {
      if (s.status === 'completed') continue;
      s.conclusion = s.status === 'in_progress' ? conclusion : 'skipped';
      s.status = 'completed';
      s.completed_at = job.completed_at;
    }
    this.emit('job', { action: 'completed', job: this.jobView(job) });
  }

  private jobView(job: JobRec): EmulatorJob {
    const { cancelRequested: _c, ...view } = job;
    return structuredClone(view);
  }

  jobs(): EmulatorJob[] {
    return [...this.jobsById.values()].map((j) => this.jobView(j));
  }

  job(id: number): EmulatorJob | undefined {
    const j = this.jobsById.get(id);
    return j ? this.jobView(j) : undefined;
  }

  /** Releases every waiting poll (server shutdown). */
  close(): void {
    for (const r of this.runnersById.values()) {
      const w = r.waiter;
      r.waiter = null;
      w?.resolve(null);
    }
  }
}

export { DEFAULT_GROUP };
