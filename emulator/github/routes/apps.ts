/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * The GitHub App endpoints an App client calls with its App JWT (RS256, verified in jwt.ts
 * against the configured public keys): get an installation and create an installation access
 * token (optionally limited to some repositories), which the REST routes then accept. The
 * server has counted the request against the caller's rate limit; the JWT is checked here.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { JwtError, verifyAppJwt, type JwtApp } from '../jwt.js';
import { isoSeconds } from '../state.js';
import { DOCS, githubError, isRecord, notFound, readBody, sendJson, type RouteContext } from '../http.js';

export interface AppInstallation {
  id: number;
  /** org or user login */
  account: string;
}

export type AppEntry = JwtApp & { installations: AppInstallation[] };

export interface AppsContext extends RouteContext {
  readonly apps: AppEntry[];
  /** Whether this login is an org (otherwise a user). */
  isOrg(login: string): boolean;
  /** `created_at` / `updated_at` of every installation. */
  readonly startedAt: string;
}

function numericId(text: string): number {
  return createHash('sha256').update(text.toLowerCase()).digest().readUInt32BE(0) % 100_000_000;
}

/** `/app/…` with `Authorization: Bearer <App JWT>`. */
export async function appApi(
  ctx: AppsContext,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  path: string,
  token: string | undefined,
  scheme: string | undefined,
): Promise<void> {
  const m = /^\/app\/installations\/(\d+)(\/access_tokens)?\/?$/.exec(path);
  const route = m && (m[2] ? method === 'POST' : method === 'GET') ? (m[2] ? 'token' : 'installation') : undefined;
  if (!token || (scheme !== 'bearer' && scheme !== 'token')) throw githubError(401, 'A JSON web token could not be decoded', DOCS.apps);
  let app;
  try {
    app = verifyAppJwt(token, ctx.apps);
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
    return sendJson(res, 200, installationView(ctx, app.appId, inst, defaultPermissions));
  }
  const body = await readBody(req);
  if (body !== undefined && !isRecord(body)) throw githubError(422, 'Invalid request.', DOCS.apps, { errors: [] });
  const repositories = isRecord(body) && Array.isArray(body['repositories']) ? (body['repositories'] as unknown[]).map(String) : undefined;
  const permissions = isRecord(body) && isRecord(body['permissions']) ? body['permissions'] : defaultPermissions;
  const { token: t, expiresAt } = ctx.state.issueInstallationToken(inst.id, inst.account, repositories);
  sendJson(res, 201, {
    token: t,
    expires_at: isoSeconds(expiresAt),
    permissions,
    repository_selection: repositories ? 'selected' : 'all',
  });
}

function installationView(ctx: AppsContext, appId: number, inst: AppInstallation, permissions: Record<string, string>): Record<string, unknown> {
  const url = ctx.url();
  const isOrg = ctx.isOrg(inst.account);
  const login = inst.account;
  const userUrl = `${url}/users/${login}`;
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
    access_tokens_url: `${url}/app/installations/${inst.id}/access_tokens`,
    repositories_url: `${url}/installation/repositories`,
    html_url: isOrg ? `https://github.com/organizations/${login}/settings/installations/${inst.id}` : `https://github.com/settings/installations/${inst.id}`,
    app_id: appId,
    app_slug: `ekiden-emulated-${appId}`,
    client_id: `Iv1.${createHash('sha256').update(String(appId)).digest('hex').slice(0, 16)}`,
    target_id: accountId,
    target_type: isOrg ? 'Organization' : 'User',
    permissions,
    events: ['workflow_job'],
    created_at: ctx.startedAt,
    updated_at: ctx.startedAt,
    single_file_name: null,
    has_multiple_single_files: false,
    single_file_paths: [],
    suspended_by: null,
    suspended_at: null,
  };
}
