/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * Runner registration the `config.sh` way: the REST endpoints that issue a scope's
 * registration and remove tokens, and the endpoint `config.sh` redeems them at
 * (`/actions/runner-registration`, `Authorization: RemoteAuth <token>`) to register a runner
 * — with GitHub's default OS/arch labels — or to remove one. Answers 404 where GitHub hides
 * a bad token or a scope mismatch.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_GROUP, StateError, isoSeconds, scopeFromWebPath, scopeKey, type Scope } from '../state.js';
import type { RegistrationRequest, RegistrationResponse } from '../protocol.js';
import { DOCS, githubError, isRecord, notFound, readBody, sendJson, type RouteContext } from '../http.js';

const OS_LABELS: Record<string, string> = { linux: 'Linux', darwin: 'macOS', macos: 'macOS', win32: 'Windows', windows: 'Windows' };
const ARCH_LABELS: Record<string, string> = { x64: 'X64', arm64: 'ARM64', arm: 'ARM' };

/** `POST …/actions/runners/registration-token` and `…/remove-token`. */
export function issueRegistrationToken(ctx: RouteContext, res: ServerResponse, scope: Scope, kind: 'registration' | 'remove'): void {
  const { token, expiresAt } = ctx.state.issueRegistrationToken(kind, scope);
  sendJson(res, 201, { token, expires_at: isoSeconds(expiresAt) });
}

/** `POST /actions/runner-registration` (also under `/api/v3`): what `config.sh` calls. */
export async function runnerRegistration(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if ((req.method ?? '').toUpperCase() !== 'POST') throw notFound();
  const m = /^RemoteAuth\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  const tokenInfo = m ? ctx.state.lookupRegistrationToken(m[1]!) : undefined;
  if (!tokenInfo) throw notFound();
  const body = (await readBody(req)) as Partial<RegistrationRequest> | undefined;
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
      ctx.state.deleteRunner(scope, body.agent_id);
    } catch (err) {
      if (err instanceof StateError && err.code === 'busy') throw githubError(422, err.message, DOCS.runners);
      if (!(err instanceof StateError && err.code === 'not-found')) throw err;
    }
    return sendJson(res, 204);
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
    created = ctx.state.createRunner({
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
  sendJson(res, 201, response);
}
