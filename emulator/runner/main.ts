/**
 * TEST AND DEMO INFRASTRUCTURE — a stand-in for actions/runner, talking only to the GitHub
 * emulator (emulator/github). It behaves like the real runner where Ekiden can observe it:
 *
 *   main.js run [--jitconfig <b64>]     (or env ACTIONS_RUNNER_INPUT_JITCONFIG, kept off argv)
 *   main.js config --url U --token T --name N --labels a,b --ephemeral --unattended --replace
 *                  [--work _work] [--runnergroup Default] [--disableupdate]
 *                  (every flag also from env ACTIONS_RUNNER_INPUT_<FLAG>)
 *   main.js config remove --token T
 *
 * - The runner directory is the current working directory (`.runner`, `.credentials`,
 *   `.credentials_rsaparams`, `_diag/`, `_work/`).
 * - `run` goes online, long-polls for a job, runs each step as `bash -c <run>` in
 *   `_work/<repo>/<repo>`, reports results, and (ephemeral) exits 0 after its one job.
 *   It exits 0 on nearly everything, like run.sh; non-zero only for a missing/invalid config.
 *   SIGTERM/SIGINT: cancels a running job, goes offline, exits 0.
 * - Diagnostics: `_diag/Runner_<yyyyMMdd-HHmmss>-utc.log` from the start and, per job,
 *   `_diag/Worker_<yyyyMMdd-HHmmss>-utc.log` with `Job ID <id>` and the job's result.
 * - Never prints or logs the JIT config, tokens or credentials.
 *
 * Runtime imports are node built-ins only (protocol types are type-only), so the compiled
 * file runs on its own wherever Node ≥ 20 is installed.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { parseArgs } from 'node:util';
import type {
  CompleteResponse,
  JitConfigFiles,
  JobConclusion,
  RegistrationRequest,
  RegistrationResponse,
  RunnerCredentialsFile,
  RunnerMessage,
  RunnerRsaParamsFile,
  RunnerSettingsFile,
  SessionResponse,
  StepReport,
  TokenResponse,
} from '../github/protocol.js';

const VERSION = '2.336.0';
const CONFIG_FILES = ['.runner', '.credentials', '.credentials_rsaparams'] as const;
const RESULT: Record<JobConclusion, string> = { success: 'Succeeded', failure: 'Failed', cancelled: 'Canceled' };
const LOG_TAIL = 64 * 1024;

class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

// ---------------------------------------------------------------- diagnostics

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** yyyyMMdd-HHmmss in UTC, as in the real runner's diag file names. */
function fileStamp(d = new Date()): string {
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}-${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}`;
}

/** `2024-01-31 12:00:00Z`, the real runner's console timestamp. */
function consoleStamp(d = new Date()): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

class DiagLog {
  constructor(readonly file: string) {
    appendFileSync(file, '');
  }

  static create(root: string, kind: 'Runner' | 'Worker'): DiagLog {
    const dir = join(root, '_diag');
    mkdirSync(dir, { recursive: true });
    // One file per process or job; two jobs within a second get the next free second's name.
    let at = Date.now();
    while (existsSync(join(dir, `${kind}_${fileStamp(new Date(at))}-utc.log`))) at += 1000;
    return new DiagLog(join(dir, `${kind}_${fileStamp(new Date(at))}-utc.log`));
  }

  write(level: 'INFO' | 'WARN' | 'ERR ', component: string, message: string): void {
    const stamp = new Date().toISOString().replace('T', ' ').replace(/Z$/, 'Z');
    appendFileSync(this.file, `[${stamp} ${level} ${component}] ${message}\n`);
  }

  info(component: string, message: string): void {
    this.write('INFO', component, message);
  }

  warn(component: string, message: string): void {
    this.write('WARN', component, message);
  }

  raw(text: string): void {
    appendFileSync(this.file, text);
  }
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}

// ---------------------------------------------------------------- HTTP

interface Reply {
  status: number;
  data: unknown;
}

async function call(method: string, url: string, init: { token?: string; auth?: string; body?: unknown; signal?: AbortSignal } = {}): Promise<Reply> {
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': `GitHubActionsRunner-linux-x64/${VERSION}` };
  if (init.token) headers['authorization'] = `Bearer ${init.token}`;
  if (init.auth) headers['authorization'] = init.auth;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: init.signal,
  });
  const text = await res.text();
  let data: unknown = text;
  try {
    data = text === '' ? undefined : (JSON.parse(text) as unknown);
  } catch {
    // keep text
  }
  return { status: res.status, data };
}

function messageOf(reply: Reply): string {
  const d = reply.data as { message?: unknown } | undefined;
  return typeof d?.message === 'string' ? d.message : `HTTP ${reply.status}`;
}

// ---------------------------------------------------------------- configuration

interface RunnerConfig {
  settings: RunnerSettingsFile;
  credentials: RunnerCredentialsFile;
  secret: string;
}

function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text.replace(/^\uFEFF/, '')) as unknown;
  } catch {
    throw new ConfigError(`${what} is not valid JSON`);
  }
}

function checkConfig(settings: unknown, credentials: unknown, rsa: unknown): RunnerConfig {
  const s = settings as Partial<RunnerSettingsFile> | null;
  const c = credentials as Partial<RunnerCredentialsFile> | null;
  const r = rsa as Partial<RunnerRsaParamsFile> | null;
  if (!s || typeof s.agentId !== 'number' || typeof s.agentName !== 'string' || typeof s.serverUrl !== 'string') {
    throw new ConfigError('.runner is missing agentId, agentName or serverUrl');
  }
  if (!c || c.scheme !== 'OAuth' || typeof c.data?.clientId !== 'string' || typeof c.data.authorizationUrl !== 'string') {
    throw new ConfigError('.credentials is not an OAuth credential');
  }
  if (!r || typeof r.d !== 'string') throw new ConfigError('.credentials_rsaparams is invalid');
  return { settings: s as RunnerSettingsFile, credentials: c as RunnerCredentialsFile, secret: r.d };
}

function decodeJitConfig(encoded: string): RunnerConfig {
  const map = parseJsonText(Buffer.from(encoded.trim(), 'base64').toString('utf8'), 'The JIT config') as Partial<JitConfigFiles> | null;
  if (!map || typeof map !== 'object') throw new ConfigError('The JIT config is not a map of files');
  const file = (name: keyof JitConfigFiles) => {
    const v = map[name];
    if (typeof v !== 'string') throw new ConfigError(`The JIT config lacks ${name}`);
    return parseJsonText(Buffer.from(v, 'base64').toString('utf8'), `${name} in the JIT config`);
  };
  return checkConfig(file('.runner'), file('.credentials'), file('.credentials_rsaparams'));
}

function loadConfigFiles(root: string): RunnerConfig {
  if (!existsSync(join(root, '.runner'))) throw new ConfigError('Not configured. Run config.(sh/cmd) to configure the runner.');
  const read = (name: string) => {
    try {
      return parseJsonText(readFileSync(join(root, name), 'utf8'), name);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`Cannot read ${name}: ${errorText(err)}`);
    }
  };
  return checkConfig(read('.runner'), read('.credentials'), read('.credentials_rsaparams'));
}

function osLabel(): string {
  return process.platform === 'darwin' ? 'macOS' : process.platform === 'win32' ? 'Windows' : 'Linux';
}

function archLabel(): string {
  return process.arch === 'arm64' ? 'ARM64' : process.arch === 'arm' ? 'ARM' : process.arch === 'ia32' ? 'X86' : 'X64';
}

// ---------------------------------------------------------------- job execution

interface JobMessage {
  id: number;
  run_id: number;
  name: string;
  repo: string;
  labels: string[];
  steps: Array<{ number: number; name: string; run: string }>;
}

class JobRun {
  private cancelRequested = false;
  private child: ChildProcess | undefined;
  readonly done: Promise<JobConclusion>;

  constructor(
    readonly job: JobMessage,
    private readonly listener: Listener,
  ) {
    this.done = this.execute().catch((err: unknown) => {
      this.listener.log.warn('JobRunner', `Job ${job.id} crashed: ${errorText(err)}`);
      return 'failure' as const;
    });
  }

  cancel(): void {
    if (this.cancelRequested) return;
    this.cancelRequested = true;
    const child = this.child;
    if (child?.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        child.kill('SIGTERM');
      }
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            child.kill('SIGKILL');
          }
        }
      }, 5000).unref();
    }
  }

  private async execute(): Promise<JobConclusion> {
    const { job, listener } = this;
    const worker = DiagLog.create(listener.root, 'Worker');
    worker.info('Worker', `Worker process started, runner version ${VERSION}`);
    worker.info('JobRunner', `Job ID ${job.id}`);
    worker.info('JobRunner', `Job name: ${job.name}; run ID ${job.run_id}; repository ${job.repo}; labels ${job.labels.join(',')}`);
    say(`${consoleStamp()}: Running job: ${job.name}`);

    const repoName = job.repo.split('/')[1] ?? 'repo';
    const workRoot = isAbsolute(listener.config.settings.workFolder) ? listener.config.settings.workFolder : join(listener.root, listener.config.settings.workFolder || '_work');
    const workspace = join(workRoot, repoName, repoName);
    const temp = join(workRoot, '_temp');
    mkdirSync(workspace, { recursive: true });
    mkdirSync(temp, { recursive: true });
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ACTIONS_RUNNER_INPUT_')) env[k] = v;
    Object.assign(env, {
      CI: 'true',
      GITHUB_ACTIONS: 'true',
      GITHUB_JOB: job.name,
      GITHUB_RUN_ID: String(job.run_id),
      GITHUB_REPOSITORY: job.repo,
      GITHUB_WORKSPACE: workspace,
      RUNNER_NAME: listener.config.settings.agentName,
      RUNNER_OS: osLabel(),
      RUNNER_ARCH: archLabel(),
      RUNNER_TEMP: temp,
      RUNNER_WORKSPACE: join(workRoot, repoName),
    });

    let conclusion: JobConclusion = 'success';
    for (const step of job.steps) {
      if (this.cancelRequested) conclusion = 'cancelled';
      if (conclusion !== 'success') {
        await listener.report(`/jobs/${job.id}/steps`, { number: step.number, status: 'completed', conclusion: 'skipped', exit_code: null } satisfies StepReport);
        continue;
      }
      worker.info('StepsRunner', `Starting step: ${step.name}`);
      await listener.report(`/jobs/${job.id}/steps`, { number: step.number, status: 'in_progress' } satisfies StepReport);
      const { exitCode, tail } = await this.runStep(step.run, workspace, env, worker);
      const stepConclusion: JobConclusion = this.cancelRequested ? 'cancelled' : exitCode === 0 ? 'success' : 'failure';
      worker.info('StepsRunner', `Finished step: ${step.name}, exit code ${exitCode}, result: ${RESULT[stepConclusion]}`);
      await listener.report(`/jobs/${job.id}/steps`, {
        number: step.number,
        status: 'completed',
        conclusion: stepConclusion,
        exit_code: exitCode,
        log: tail,
      } satisfies StepReport);
      conclusion = stepConclusion;
    }
    worker.info('JobRunner', `Job result after all job steps finish: ${RESULT[conclusion]}`);
    const reply = await listener.report(`/jobs/${job.id}/complete`, { conclusion });
    if (reply?.status === 409) worker.warn('JobRunner', `The server had already ended job ${job.id}: ${messageOf(reply)}`);
    if (reply?.status === 200 && (reply.data as CompleteResponse).runner_deleted) worker.info('JobRunner', 'The server removed this ephemeral runner');
    worker.info('Worker', `Job ${job.name} completed with result: ${RESULT[conclusion]}`);
    say(`${consoleStamp()}: Job ${job.name} completed with result: ${RESULT[conclusion]}`);
    return conclusion;
  }

  private runStep(run: string, cwd: string, env: NodeJS.ProcessEnv, worker: DiagLog): Promise<{ exitCode: number; tail: string }> {
    return new Promise((resolve) => {
      let tail = '';
      const onData = (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        worker.raw(text);
        tail = (tail + text).slice(-LOG_TAIL);
      };
      const child = spawn('bash', ['-e', '-c', run], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      this.child = child;
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('error', (err) => {
        onData(Buffer.from(`${errorText(err)}\n`));
      });
      child.on('close', (code, signal) => {
        this.child = undefined;
        resolve({ exitCode: code ?? (signal ? 128 + (signal === 'SIGKILL' ? 9 : 15) : 127), tail });
      });
      if (this.cancelRequested) this.cancel();
    });
  }
}

// ---------------------------------------------------------------- listener

class Listener {
  readonly log: DiagLog;
  private token: string | undefined;
  private sessionId: string | undefined;
  private pollTimeoutMs = 20_000;
  private stopping = false;
  private finished = false;
  private deleted = false;
  private pollAbort: AbortController | undefined;
  private wake: (() => void) | undefined;
  private jobRun: JobRun | undefined;

  constructor(
    readonly root: string,
    readonly config: RunnerConfig,
    log: DiagLog,
    private readonly fromFiles: boolean,
  ) {
    this.log = log;
  }

  private get api(): string {
    return `${this.config.settings.serverUrl.replace(/\/$/, '')}/_emulator/runner-api`;
  }

  /** First signal: stop gracefully (cancel the job, go offline). Second: exit now. */
  stop(signal: string): void {
    if (this.stopping) process.exit(0);
    this.log.info('Runner', `Received ${signal}, shutting down`);
    say(`${consoleStamp()}: Runner received a ${signal} signal, shutting down`);
    this.stopping = true;
    this.jobRun?.cancel();
    this.pollAbort?.abort();
    this.wake?.();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async fetchToken(): Promise<'ok' | 'deleted'> {
    const reply = await call('POST', this.config.credentials.data.authorizationUrl, {
      body: { client_id: this.config.credentials.data.clientId, client_secret: this.config.secret },
    });
    if (reply.status === 200) {
      this.token = (reply.data as TokenResponse).access_token;
      return 'ok';
    }
    if (reply.status === 401 || reply.status === 404) return 'deleted';
    throw new Error(`token exchange failed: ${messageOf(reply)}`);
  }

  /** Obtains a token and a session; false when the runner was deleted or we are stopping. */
  private async connect(): Promise<boolean> {
    let delay = 1000;
    while (!this.stopping) {
      try {
        if (!this.token && (await this.fetchToken()) === 'deleted') {
          this.deleted = true;
          this.log.warn('Runner', 'The runner registration has been deleted from the server');
          say('Failed to create a session. The runner registration has been deleted from the server, please re-configure. Runner registrations are automatically deleted for runners that have not connected to the service recently.');
          return false;
        }
        const reply = await call('POST', `${this.api}/sessions`, {
          token: this.token,
          body: { os: osLabel(), arch: archLabel(), version: VERSION, hostname: hostname() },
        });
        if (reply.status === 201) {
          const session = reply.data as SessionResponse;
          this.sessionId = session.session_id;
          this.pollTimeoutMs = session.poll_timeout_ms;
          this.log.info('Runner', `Session created for runner ${session.runner.id} (${session.runner.name})`);
          return true;
        }
        if (reply.status === 401) {
          this.token = undefined;
          continue;
        }
        if (reply.status === 409) {
          this.log.warn('Runner', 'A session for this runner already exists.');
          say(`${consoleStamp()}: A session for this runner already exists.`);
        } else {
          this.log.warn('Runner', `Creating a session failed: ${messageOf(reply)}`);
        }
      } catch (err) {
        this.log.warn('Runner', `Runner connect error: ${errorText(err)}. Retrying until reconnected.`);
      }
      await this.pause(delay);
      delay = Math.min(delay * 2, 5000);
    }
    return false;
  }

  /** Reports to the server, retrying network errors a few times; undefined if it never got through. */
  async report(path: string, body: unknown): Promise<Reply | undefined> {
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        if (!this.token && (await this.fetchToken()) === 'deleted') return undefined;
        const reply = await call('POST', `${this.api}${path}`, { token: this.token, body });
        if (reply.status === 401 && attempt < 5) {
          this.token = undefined;
          continue;
        }
        if (reply.status >= 400) this.log.warn('Runner', `POST ${path}: ${messageOf(reply)}`);
        return reply;
      } catch (err) {
        this.log.warn('Runner', `POST ${path} failed: ${errorText(err)}`);
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
    return undefined;
  }

  private onMessage(msg: RunnerMessage): void {
    if (msg.type === 'job') {
      if (this.jobRun) {
        this.log.warn('Runner', `Ignoring job ${msg.job.id}: already running job ${this.jobRun.job.id}`);
        return;
      }
      this.log.info('Runner', `Got job ${msg.job.id} (${msg.job.name})`);
      const run = new JobRun(msg.job, this);
      this.jobRun = run;
      void run.done.then(() => {
        this.jobRun = undefined;
        if (this.config.settings.ephemeral) {
          this.finished = true;
          this.pollAbort?.abort();
          this.wake?.();
        }
      });
    } else if (msg.type === 'job-cancel') {
      this.log.info('Runner', `Cancellation requested for job ${msg.job_id}`);
      if (this.jobRun?.job.id === msg.job_id) this.jobRun.cancel();
    }
  }

  async run(): Promise<number> {
    const s = this.config.settings;
    this.log.info('Runner', `Runner stand-in ${VERSION} starting in ${this.root}`);
    this.log.info('Runner', `Runner ${s.agentId} (${s.agentName}), ephemeral ${s.ephemeral}, server ${s.serverUrl}`);
    if (!(await this.connect())) return this.shutdown();
    say('');
    say('√ Connected to GitHub');
    say('');
    say(`Current runner version: '${VERSION}'`);
    say(`${consoleStamp()}: Listening for Jobs`);
    this.log.info('Runner', 'Listening for Jobs');
    let delay = 500;
    while (!this.stopping && !this.finished) {
      const ac = new AbortController();
      this.pollAbort = ac;
      const guard = setTimeout(() => ac.abort(), this.pollTimeoutMs + 15_000);
      try {
        const reply = await call('GET', `${this.api}/sessions/${encodeURIComponent(this.sessionId!)}/messages?wait_ms=${this.pollTimeoutMs}`, {
          token: this.token,
          signal: ac.signal,
        });
        delay = 500;
        if (reply.status === 200) this.onMessage(reply.data as RunnerMessage);
        else if (reply.status === 404 || reply.status === 401) {
          // An ephemeral runner is removed as its job completes: let the job finish first.
          if (this.jobRun) await this.jobRun.done;
          if (this.finished || this.stopping) break;
          this.log.warn('Runner', `Session lost (${messageOf(reply)}); reconnecting`);
          if (reply.status === 401) this.token = undefined;
          this.sessionId = undefined;
          if (!(await this.connect())) break;
        } else if (reply.status !== 204) {
          this.log.warn('Runner', `Polling for messages failed: ${messageOf(reply)}`);
          await this.pause(delay);
        }
      } catch (err) {
        if (this.stopping || this.finished) break;
        this.log.warn('Runner', `Runner connect error: ${errorText(err)}. Retrying until reconnected.`);
        await this.pause(delay);
        delay = Math.min(delay * 2, 5000);
      } finally {
        clearTimeout(guard);
      }
    }
    return this.shutdown();
  }

  private async shutdown(): Promise<number> {
    if (this.jobRun) {
      this.jobRun.cancel();
      await this.jobRun.done;
    }
    if (this.sessionId && this.token && !this.deleted) {
      try {
        await call('DELETE', `${this.api}/sessions/${encodeURIComponent(this.sessionId)}`, { token: this.token });
      } catch (err) {
        this.log.warn('Runner', `Deleting the session failed: ${errorText(err)}`);
      }
    }
    if (this.fromFiles && (this.deleted || (this.finished && this.config.settings.ephemeral))) {
      for (const f of CONFIG_FILES) rmSync(join(this.root, f), { force: true });
      this.log.info('Runner', 'Removed the local runner configuration');
    }
    this.log.info('Runner', 'Runner listener exited with 0');
    return 0;
  }
}

// ---------------------------------------------------------------- commands

function truthy(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|y|on)$/i.test(v.trim());
}

async function runCommand(args: string[]): Promise<number> {
  const root = process.cwd();
  const log = DiagLog.create(root, 'Runner');
  const { values } = parseArgs({ args, options: { jitconfig: { type: 'string' }, once: { type: 'boolean' }, startuptype: { type: 'string' } }, strict: false });
  const fromEnv = process.env['ACTIONS_RUNNER_INPUT_JITCONFIG'];
  delete process.env['ACTIONS_RUNNER_INPUT_JITCONFIG'];
  const jit = typeof values.jitconfig === 'string' ? values.jitconfig : fromEnv;
  let config: RunnerConfig;
  try {
    config = jit ? decodeJitConfig(jit) : loadConfigFiles(root);
  } catch (err) {
    const text = err instanceof ConfigError ? err.message : 'Invalid configuration';
    log.write('ERR ', 'Runner', text);
    process.stderr.write(`${text}\n`);
    return 1;
  }
  const listener = new Listener(root, config, log, !jit);
  process.on('SIGTERM', () => listener.stop('SIGTERM'));
  process.on('SIGINT', () => listener.stop('SIGINT'));
  return listener.run();
}

async function configCommand(args: string[]): Promise<number> {
  const root = process.cwd();
  const remove = args[0] === 'remove';
  const { values } = parseArgs({
    args: remove ? args.slice(1) : args,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      name: { type: 'string' },
      labels: { type: 'string' },
      work: { type: 'string' },
      runnergroup: { type: 'string' },
      ephemeral: { type: 'boolean' },
      unattended: { type: 'boolean' },
      replace: { type: 'boolean' },
      disableupdate: { type: 'boolean' },
      'no-default-labels': { type: 'boolean' },
    },
    strict: false,
  });
  const input = (flag: string): string | undefined => {
    const v = values[flag];
    if (typeof v === 'string') return v;
    const env = process.env[`ACTIONS_RUNNER_INPUT_${flag.toUpperCase()}`];
    return env === undefined || env === '' ? undefined : env;
  };
  const flag = (name: string): boolean => values[name] === true || truthy(process.env[`ACTIONS_RUNNER_INPUT_${name.toUpperCase()}`]);
  const token = input('token');
  delete process.env['ACTIONS_RUNNER_INPUT_TOKEN'];

  if (process.getuid?.() === 0 && !process.env['RUNNER_ALLOW_RUNASROOT']) {
    say('Must not run with sudo');
    return 1;
  }
  const log = DiagLog.create(root, 'Runner');
  const fail = (message: string): number => {
    log.write('ERR ', 'Runner', message);
    process.stderr.write(`${message}\n`);
    return 1;
  };

  if (remove) {
    if (!existsSync(join(root, '.runner'))) return fail('Not configured. Run config.(sh/cmd) to configure the runner.');
    if (!token) return fail('Missing required argument: --token');
    let settings: RunnerSettingsFile;
    try {
      settings = loadConfigFiles(root).settings;
    } catch (err) {
      return fail(errorText(err));
    }
    try {
      const target = new URL(settings.gitHubUrl);
      const reply = await call('POST', `${target.origin}/actions/runner-registration`, {
        auth: `RemoteAuth ${token}`,
        body: { url: settings.gitHubUrl, runner_event: 'remove', agent_id: settings.agentId } satisfies RegistrationRequest,
      });
      if (reply.status !== 204 && reply.status !== 200) return fail(`Http response code: ${reply.status} from 'POST ${target.origin}/actions/runner-registration': ${messageOf(reply)}`);
    } catch (err) {
      return fail(`Failed to remove the runner: ${errorText(err)}`);
    }
    for (const f of CONFIG_FILES) rmSync(join(root, f), { force: true });
    say('√ Runner removed successfully');
    say('√ Removed .credentials');
    say('√ Removed .runner');
    log.info('Runner', 'Runner removed');
    return 0;
  }

  if (existsSync(join(root, '.runner'))) {
    return fail("Cannot configure the runner because it is already configured. To reconfigure the runner, run 'config.cmd remove' or './config.sh remove' first.");
  }
  const url = input('url');
  if (!url) return fail('Missing required argument: --url');
  if (!token) return fail('Missing required argument: --token');
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return fail(`Invalid URL: ${url}`);
  }
  const name = input('name') ?? hostname();
  const labels = (input('labels') ?? '').split(',').map((l) => l.trim()).filter((l) => l.length > 0);
  const request: RegistrationRequest = {
    url,
    runner_event: 'register',
    name,
    labels,
    ephemeral: flag('ephemeral'),
    replace: flag('replace'),
    work_folder: input('work') ?? '_work',
    runner_group: input('runnergroup'),
    disable_update: flag('disableupdate'),
    os: osLabel(),
    arch: archLabel(),
    version: VERSION,
  };
  say('');
  say('# Authentication');
  let reply: Reply;
  try {
    reply = await call('POST', `${target.origin}/actions/runner-registration`, { auth: `RemoteAuth ${token}`, body: request });
  } catch (err) {
    return fail(`Failed to connect to ${target.origin}: ${errorText(err)}`);
  }
  if (reply.status !== 201) {
    return fail(`Http response code: ${reply.status} from 'POST ${target.origin}/actions/runner-registration' (${messageOf(reply)})`);
  }
  say('√ Connected to GitHub');
  const { runner, files } = reply.data as RegistrationResponse;
  for (const f of CONFIG_FILES) {
    writeFileSync(join(root, f), Buffer.from(files[f], 'base64').toString('utf8'), { mode: f === '.runner' ? 0o644 : 0o600 });
  }
  say('');
  say('# Runner Registration');
  say('√ Runner successfully added');
  say('√ Runner connection is good');
  say('');
  say('# Runner settings');
  say('√ Settings Saved.');
  log.info('Runner', `Configured runner ${runner.id} (${runner.name}), ephemeral ${request.ephemeral === true}, labels ${labels.join(',')}`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'run') return runCommand(rest);
  if (command === 'config') return configCommand(rest);
  process.stderr.write('usage: main.js run [--jitconfig <b64>] | config [remove] --url U --token T ...\n');
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`runner stand-in: ${errorText(err)}\n`);
    process.exit(0);
  },
);
