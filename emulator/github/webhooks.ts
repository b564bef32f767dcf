/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * The emulator's webhook deliveries: every job event (queued, in_progress, completed) is
 * POSTed to each registered hook as a `workflow_job` payload shaped like GitHub's (typed
 * against @octokit/webhooks' OpenAPI-generated payload types), with GitHub's headers and an
 * `X-Hub-Signature-256` HMAC over the exact body bytes. Deliveries to one hook go out in
 * order; a failed one (network error or 5xx) is retried with the same delivery id. Tests
 * read the delivery log and can redeliver a delivery under its original id, as GitHub's
 * "Redeliver" does.
 */
import type { EmitterWebhookEvent } from '@octokit/webhooks';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EmulatorJob, JobEvent } from './state.js';

type WorkflowJobEventPayload = EmitterWebhookEvent<'workflow_job'>['payload'];
export type WorkflowJobQueuedPayload = Extract<WorkflowJobEventPayload, { action: 'queued' }>;
export type WorkflowJobInProgressPayload = Extract<WorkflowJobEventPayload, { action: 'in_progress' }>;
export type WorkflowJobCompletedPayload = Extract<WorkflowJobEventPayload, { action: 'completed' }>;
export type WorkflowJobPayload = WorkflowJobQueuedPayload | WorkflowJobInProgressPayload | WorkflowJobCompletedPayload;
type Repository = WorkflowJobQueuedPayload['repository'];
type User = WorkflowJobQueuedPayload['sender'];

export interface WebhookTarget {
  url: string;
  secret: string;
}

export interface WebhookDelivery {
  /** `X-GitHub-Delivery`: the same for every attempt and redelivery of one event. */
  id: string;
  hookId: number;
  event: 'workflow_job';
  action: JobEvent['action'];
  jobId: number;
  redelivery: boolean;
  attempts: number;
  /** Status of the last attempt; null while pending or when it got no HTTP answer. */
  status: number | null;
  error?: string;
  state: 'pending' | 'delivered' | 'failed';
}

export interface WebhookSenderOptions {
  /** REST base URL of the emulator (payload URLs). */
  apiUrl: () => string;
  /** Delays before each retry; its length is the retry count. Default [200, 1000]. */
  retryDelaysMs?: number[];
  /** Per-attempt timeout. Default 10000 (GitHub's). */
  timeoutMs?: number;
}

interface Hook extends WebhookTarget {
  id: number;
  queue: Promise<void>;
}

interface Stored {
  hook: Hook;
  body: Buffer;
  repoId: number;
  action: JobEvent['action'];
  jobId: number;
}

export const HOOKSHOT_USER_AGENT = 'GitHub-Hookshot/ekiden-emulator';

function numericId(text: string): number {
  return createHash('sha256').update(text.toLowerCase()).digest().readUInt32BE(0) % 100_000_000;
}

function nodeId(prefix: string, id: number): string {
  return `${prefix}_${Buffer.from(`0:${id}`).toString('base64url')}`;
}

/** HMAC-SHA256 of the body bytes, as GitHub puts it in `X-Hub-Signature-256`. */
export function signBody(secret: string, body: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

function user(login: string, api: string, web: string): User {
  const u = `${api}/users/${login}`;
  const id = numericId(`user:${login}`);
  return {
    login,
    id,
    node_id: nodeId('U', id),
    avatar_url: `${web}/avatars/u/${id}`,
    gravatar_id: '',
    url: u,
    html_url: `${web}/${login}`,
    followers_url: `${u}/followers`,
    following_url: `${u}/following{/other_user}`,
    gists_url: `${u}/gists{/gist_id}`,
    starred_url: `${u}/starred{/owner}{/repo}`,
    subscriptions_url: `${u}/subscriptions`,
    organizations_url: `${u}/orgs`,
    repos_url: `${u}/repos`,
    events_url: `${u}/events{/privacy}`,
    received_events_url: `${u}/received_events`,
    type: 'User',
    site_admin: false,
  };
}

function repository(fullName: string, api: string, web: string): Repository {
  const [owner, name] = fullName.split('/') as [string, string];
  const r = `${api}/repos/${fullName}`;
  const id = numericId(`repo:${fullName}`);
  const created = '2024-01-01T00:00:00Z';
  return {
    id,
    node_id: nodeId('R', id),
    name,
    full_name: fullName,
    private: true,
    owner: user(owner, api, web),
    html_url: `${web}/${fullName}`,
    description: null,
    fork: false,
    url: r,
    forks_url: `${r}/forks`,
    keys_url: `${r}/keys{/key_id}`,
    collaborators_url: `${r}/collaborators{/collaborator}`,
    teams_url: `${r}/teams`,
    hooks_url: `${r}/hooks`,
    issue_events_url: `${r}/issues/events{/number}`,
    events_url: `${r}/events`,
    assignees_url: `${r}/assignees{/user}`,
    branches_url: `${r}/branches{/branch}`,
    tags_url: `${r}/tags`,
    blobs_url: `${r}/git/blobs{/sha}`,
    git_tags_url: `${r}/git/tags{/sha}`,
    git_refs_url: `${r}/git/refs{/sha}`,
    trees_url: `${r}/git/trees{/sha}`,
    statuses_url: `${r}/statuses/{sha}`,
    languages_url: `${r}/languages`,
    stargazers_url: `${r}/stargazers`,
    contributors_url: `${r}/contributors`,
    subscribers_url: `${r}/subscribers`,
    subscription_url: `${r}/subscription`,
    commits_url: `${r}/commits{/sha}`,
    git_commits_url: `${r}/git/commits{/sha}`,
    comments_url: `${r}/comments{/number}`,
    issue_comment_url: `${r}/issues/comments{/number}`,
    contents_url: `${r}/contents/{+path}`,
    compare_url: `${r}/compare/{base}...{head}`,
    merges_url: `${r}/merges`,
    archive_url: `${r}/{archive_format}{/ref}`,
    downloads_url: `${r}/downloads`,
    issues_url: `${r}/issues{/number}`,
    pulls_url: `${r}/pulls{/number}`,
    milestones_url: `${r}/milestones{/number}`,
    notifications_url: `${r}/notifications{?since,all,participating}`,
    labels_url: `${r}/labels{/name}`,
    releases_url: `${r}/releases{/id}`,
    deployments_url: `${r}/deployments`,
    created_at: created,
    updated_at: created,
    pushed_at: created,
    git_url: `${web.replace(/^https?:/, 'git:')}/${fullName}.git`,
    ssh_url: `git@${new URL(web).host}:${fullName}.git`,
    clone_url: `${web}/${fullName}.git`,
    svn_url: `${web}/${fullName}`,
    homepage: null,
    size: 0,
    stargazers_count: 0,
    watchers_count: 0,
    language: null,
    has_issues: true,
    has_projects: true,
    has_downloads: true,
    has_wiki: true,
    has_pages: false,
    has_discussions: false,
    forks_count: 0,
    mirror_url: null,
    archived: false,
    disabled: false,
    open_issues_count: 0,
    license: null,
    allow_forking: true,
    is_template: false,
    web_commit_signoff_required: false,
    topics: [],
    visibility: 'private',
    forks: 0,
    open_issues: 0,
    watchers: 0,
    default_branch: 'main',
  };
}

/** The `workflow_job` webhook payload GitHub sends for this job event. */
export function workflowJobPayload(action: JobEvent['action'], job: EmulatorJob, apiUrl: string): WorkflowJobPayload {
  const api = apiUrl.replace(/\/$/, '');
  const web = api;
  const base = {
    id: job.id,
    run_id: job.run_id,
    run_url: `${api}/repos/${job.repo}/actions/runs/${job.run_id}`,
    run_attempt: 1,
    node_id: nodeId('CR', job.id),
    head_sha: createHash('sha1').update(`${job.repo}:${job.run_id}`).digest('hex'),
    head_branch: job.head_branch,
    url: `${api}/repos/${job.repo}/actions/jobs/${job.id}`,
    html_url: `${web}/${job.repo}/actions/runs/${job.run_id}/job/${job.id}`,
    check_run_url: `${api}/repos/${job.repo}/check-runs/${job.id}`,
    name: job.name,
    workflow_name: job.workflow_name,
    labels: [...job.labels],
    created_at: job.created_at,
    // GitHub reports the creation time as started_at until a runner starts the job.
    started_at: job.started_at ?? job.created_at,
    runner_id: job.runner_id,
    runner_name: job.runner_name,
    runner_group_id: job.runner_group_id,
    runner_group_name: job.runner_group_name,
  };
  const steps = job.steps.map((s) => ({
    name: s.name,
    number: s.number,
    status: s.status,
    conclusion: s.conclusion,
    started_at: s.started_at,
    completed_at: s.completed_at,
  }));
  const common = { repository: repository(job.repo, api, web), sender: user(job.repo.split('/')[0]!, api, web) };
  switch (action) {
    case 'queued': {
      const payload: WorkflowJobQueuedPayload = {
        action,
        workflow_job: { ...base, status: 'queued', conclusion: null, completed_at: null, steps: [] },
        ...common,
      };
      return payload;
    }
    case 'in_progress': {
      const payload: WorkflowJobInProgressPayload = {
        action,
        workflow_job: { ...base, status: 'in_progress', conclusion: null, completed_at: null, steps },
        ...common,
      };
      return payload;
    }
    case 'completed': {
      const payload: WorkflowJobCompletedPayload = {
        action,
        workflow_job: {
          ...base,
          status: 'completed',
          conclusion: job.conclusion ?? 'failure',
          completed_at: job.completed_at ?? job.created_at,
          // The generated type intersects the step list with `(Record<string, never> | null)[]`
          // (an artefact of the description's allOf); GitHub sends full step objects here.
          steps: steps as WorkflowJobCompletedPayload['workflow_job']['steps'],
        },
        ...common,
      };
      return payload;
    }
  }
}

export class WebhookSender {
  private readonly hooks: Hook[] = [];
  private readonly log: WebhookDelivery[] = [];
  private readonly bodies = new Map<string, Stored>();
  private readonly retryDelaysMs: number[];
  private readonly timeoutMs: number;
  private closing = new AbortController();
  /** GitHub hook ids are nine-digit numbers. */
  private hookSeq = 400_000_000;

  constructor(private readonly opts: WebhookSenderOptions) {
    this.retryDelaysMs = opts.retryDelaysMs ?? [200, 1000];
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Registers a hook; returns its id (`X-GitHub-Hook-ID`). */
  add(target: WebhookTarget): number {
    if (!target.secret) throw new Error('webhook secret must not be empty');
    if (!URL.canParse(target.url)) throw new Error(`webhook url is not a URL: ${target.url}`);
    const hook: Hook = { ...target, id: ++this.hookSeq, queue: Promise.resolve() };
    this.hooks.push(hook);
    return hook.id;
  }

  remove(hookId: number): void {
    const i = this.hooks.findIndex((h) => h.id === hookId);
    if (i >= 0) this.hooks.splice(i, 1);
  }

  /** Sends one delivery per hook for a job event. */
  jobEvent(event: JobEvent): void {
    for (const hook of this.hooks) {
      const payload = workflowJobPayload(event.action, event.job, this.opts.apiUrl());
      const body = Buffer.from(JSON.stringify(payload), 'utf8');
      const stored: Stored = { hook, body, repoId: payload.repository.id, action: event.action, jobId: event.job.id };
      const id = randomUUID();
      this.bodies.set(id, stored);
      this.enqueue(id, stored, false);
    }
  }

  /** Every delivery so far (redeliveries are entries of their own with the original id). */
  deliveries(): WebhookDelivery[] {
    return this.log.map((d) => ({ ...d }));
  }

  /** Sends a past delivery again, same id, body and signature; resolves with its record. */
  async redeliver(id: string): Promise<WebhookDelivery> {
    const stored = this.bodies.get(id);
    if (!stored) throw new Error(`no delivery ${id}`);
    const record = this.enqueue(id, stored, true);
    await stored.hook.queue;
    return { ...record };
  }

  /** Resolves once every delivery queued so far has been attempted to the end. */
  async idle(): Promise<void> {
    await Promise.all(this.hooks.map((h) => h.queue));
  }

  /** Resolves with the first delivery matching `predicate`. */
  async waitFor(predicate: (d: WebhookDelivery) => boolean, timeoutMs = 10_000): Promise<WebhookDelivery> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.log.find(predicate);
      if (found) return { ...found };
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for a webhook delivery; have ${JSON.stringify(this.log)}`);
      await sleep(25);
    }
  }

  /** Drops the deliveries and retries in flight (emulator stop); later events are sent again. */
  close(): void {
    this.closing.abort();
    this.closing = new AbortController();
  }

  private enqueue(id: string, stored: Stored, redelivery: boolean): WebhookDelivery {
    const record: WebhookDelivery = {
      id,
      hookId: stored.hook.id,
      event: 'workflow_job',
      action: stored.action,
      jobId: stored.jobId,
      redelivery,
      attempts: 0,
      status: null,
      state: 'pending',
    };
    this.log.push(record);
    const { signal } = this.closing;
    stored.hook.queue = stored.hook.queue.then(() => this.send(record, stored, signal));
    return record;
  }

  private async send(record: WebhookDelivery, stored: Stored, closing: AbortSignal): Promise<void> {
    const { hook, body } = stored;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': HOOKSHOT_USER_AGENT,
      'x-github-event': 'workflow_job',
      'x-github-delivery': record.id,
      'x-github-hook-id': String(hook.id),
      'x-github-hook-installation-target-type': 'repository',
      'x-github-hook-installation-target-id': String(stored.repoId),
      'x-hub-signature': `sha1=${createHmac('sha1', hook.secret).update(body).digest('hex')}`,
      'x-hub-signature-256': signBody(hook.secret, body),
    };
    for (let attempt = 0; attempt <= this.retryDelaysMs.length; attempt++) {
      if (closing.aborted) break;
      if (attempt > 0) {
        try {
          await sleep(this.retryDelaysMs[attempt - 1]!, undefined, { signal: closing });
        } catch {
          break;
        }
      }
      record.attempts++;
      try {
        const res = await fetch(hook.url, {
          method: 'POST',
          headers,
          // The signed bytes: UTF-8 JSON, sent as the same UTF-8 text.
          body: body.toString('utf8'),
          signal: AbortSignal.any([closing, AbortSignal.timeout(this.timeoutMs)]),
        });
        await res.arrayBuffer().catch(() => undefined);
        record.status = res.status;
        delete record.error;
        if (res.status < 500) {
          record.state = res.status < 400 ? 'delivered' : 'failed';
          return;
        }
      } catch (err) {
        record.status = null;
        record.error = (err as Error).message;
      }
    }
    if (closing.aborted) record.error = 'emulator stopped before the delivery succeeded';
    record.state = 'failed';
  }
}
