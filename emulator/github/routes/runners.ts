/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * The self-hosted runner REST resource of a repo, org or enterprise scope: list runners
 * (paginated, `name` filter), get and delete one runner, create a just-in-time runner
 * (`generate-jitconfig`, validated like GitHub's 422s) and list the runner groups (only the
 * Default group exists). The server has authenticated the caller and checked the scope.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_GROUP, EmulatorState, StateError, type Scope } from '../state.js';
import { DOCS, githubError, invalid, isRecord, notFound, paginate, readBody, sendJson, type RouteContext } from '../http.js';

export function listRunners(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, url: URL, scope: Scope): void {
  const name = url.searchParams.get('name');
  const all = ctx.state
    .runners(scope)
    .filter((r) => name === null || r.name.toLowerCase() === name.toLowerCase())
    .sort((x, y) => x.id - y.id);
  const page = paginate(req, url, all, () => ctx.url());
  sendJson(res, 200, { total_count: all.length, runners: page.items.map((r) => EmulatorState.restView(r)) }, page.headers);
}

export function getRunner(ctx: RouteContext, res: ServerResponse, scope: Scope, runnerId: number): void {
  const r = ctx.state.runner(scope, runnerId);
  if (!r) throw notFound(DOCS.runners);
  sendJson(res, 200, EmulatorState.restView(r));
}

export function deleteRunner(ctx: RouteContext, res: ServerResponse, scope: Scope, runnerId: number): void {
  try {
    ctx.state.deleteRunner(scope, runnerId);
  } catch (err) {
    if (err instanceof StateError && err.code === 'busy') throw githubError(422, err.message, DOCS.runners, { errors: [err.message] });
    if (err instanceof StateError && err.code === 'not-found') throw notFound(DOCS.runners);
    throw err;
  }
  sendJson(res, 204);
}

export async function generateJitConfig(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, scope: Scope): Promise<void> {
  const doc = `${DOCS.runners}#create-configuration-for-a-just-in-time-runner-for-${scope.kind === 'repo' ? 'a-repository' : scope.kind === 'org' ? 'an-organization' : 'an-enterprise'}`;
  const body = await readBody(req);
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
    created = ctx.state.createRunner({
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
  ctx.state.noteSecret(encoded);
  sendJson(res, 201, { runner: EmulatorState.restView(created.runner), encoded_jit_config: encoded });
}

/** An org or enterprise: the scopes that have runner groups. */
export type GroupScope = Exclude<Scope, { kind: 'repo' }>;

/** Runner groups of an org or enterprise (repos have none). */
export function listRunnerGroups(ctx: RouteContext, res: ServerResponse, scope: GroupScope): void {
  const scopePath = scope.kind === 'org' ? `orgs/${encodeURIComponent(scope.org)}` : `enterprises/${encodeURIComponent(scope.enterprise)}`;
  sendJson(res, 200, {
    total_count: 1,
    runner_groups: [
      {
        id: DEFAULT_GROUP.id,
        name: DEFAULT_GROUP.name,
        visibility: 'all',
        default: true,
        runners_url: `${ctx.url()}/${scopePath}/actions/runner-groups/${DEFAULT_GROUP.id}/runners`,
        hosted_runners_url: `${ctx.url()}/${scopePath}/actions/runner-groups/${DEFAULT_GROUP.id}/hosted-runners`,
        inherited: false,
        allows_public_repositories: true,
        restricted_to_workflows: false,
        selected_workflows: [],
        workflow_restrictions_read_only: false,
      },
    ],
  });
}
