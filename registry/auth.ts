/**
 * Registry authentication from `WWW-Authenticate` challenges (Docker/OCI distribution token
 * auth). Guarantees: Basic credentials go only to the registry that asked for them, over https
 * (or http with insecure); a Bearer challenge is answered by fetching a token from its realm
 * for the request's scope (with the Basic credentials when there are some, anonymously
 * otherwise), cached per scope until shortly before it expires, dropped and fetched again when
 * the registry answers 401 to it; rejected or missing credentials are RegistryError
 * 'unauthorized' (not retryable) naming the setting to fix (`credentialSource`). Secrets
 * (password, Basic header, tokens) never appear in messages: `scrub` removes them from any text.
 */
import { RegistryError, fromResponse } from './errors.js';
import { drain, readBody, type RegistryEndpoint, type Transport } from './transport.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** The first challenge of a `WWW-Authenticate` header (the ones registries send have one). */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const text = Array.isArray(header) ? header[0] : header;
  if (!text) return undefined;
  const m = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(.*)$/s.exec(text);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (let p = re.exec(m[2]); p; p = re.exec(m[2])) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  return { scheme: m[1].toLowerCase(), params };
}

/** Does scope `have` (`type:name:a,b`) grant everything each part of `want` (space-separated) asks? */
export function covers(have: string, want: string): boolean {
  const parse = (s: string) => {
    const i = s.lastIndexOf(':');
    return { resource: s.slice(0, i), actions: new Set(s.slice(i + 1).split(',')) };
  };
  const h = parse(have);
  return want.split(' ').filter(Boolean).every((w) => {
    const x = parse(w);
    return x.resource === h.resource && [...x.actions].every((a) => h.actions.has(a) || h.actions.has('*'));
  });
}

interface Token {
  value: string;
  expiresAt: number;
}

export class Authorizer {
  private readonly username?: string;
  private readonly password?: string;
  private readonly basicHeader?: string;
  private readonly fix: string;
  private wantsBasic = false;
  private bearer?: { realm: URL; service?: string };
  private readonly tokens = new Map<string, Token>();
  private readonly pending = new Map<string, Promise<Token>>();
  private readonly secrets = new Set<string>();

  constructor(
    private readonly transport: Transport,
    endpoint: RegistryEndpoint,
    private readonly now: () => number = Date.now,
  ) {
    this.username = endpoint.username || undefined;
    this.password = endpoint.password || undefined;
    this.fix = endpoint.credentialSource ? `check ${endpoint.credentialSource}` : 'check the registry username and password';
    if (this.username !== undefined && this.password !== undefined) {
      const b64 = Buffer.from(`${this.username}:${this.password}`).toString('base64');
      this.basicHeader = `Basic ${b64}`;
      this.secrets.add(this.password).add(b64);
    }
  }

  get hasCredentials(): boolean {
    return this.basicHeader !== undefined;
  }

  /** The Authorization header for a request needing `scope`, when one is known to be wanted. */
  async header(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    if (this.bearer) return `Bearer ${(await this.token(scope, undefined, signal)).value}`;
    if (this.wantsBasic) return this.basicHeader;
    return undefined;
  }

  /**
   * The registry answered 401 (with `header` set to `sent`): learn its challenge and get ready
   * to resend, or throw 'unauthorized' when resending cannot help.
   */
  async challenged(wwwAuthenticate: string | string[] | undefined, scope: string, sent: string | undefined, what: string, signal?: AbortSignal): Promise<void> {
    const ch = parseChallenge(wwwAuthenticate);
    const where = this.transport.where;
    if (ch?.scheme === 'basic') {
      if (!this.basicHeader) throw this.missing(what);
      if (sent === this.basicHeader) throw this.rejected(what, where);
      this.wantsBasic = true;
      return;
    }
    if (ch?.scheme === 'bearer' && ch.params.realm) {
      let realm: URL;
      try {
        realm = new URL(ch.params.realm);
      } catch (err) {
        throw new RegistryError('protocol', `${what}: registry ${where} sent a token realm that is not a URL`, { cause: err });
      }
      this.transport.checkScheme(realm, `${what}: token realm`);
      this.bearer = { realm, service: ch.params.service };
      const cached = this.tokens.get(scope);
      if (cached && sent === `Bearer ${cached.value}`) this.tokens.delete(scope);
      await this.token(scope, ch.params.scope, signal);
      return;
    }
    if (!this.basicHeader) throw this.missing(what);
    throw new RegistryError('unauthorized', `${what}: registry ${where} answered 401 with ${ch ? `an unsupported "${ch.scheme}" challenge` : 'no challenge'}; ${this.fix}`, { retryable: false });
  }

  /** A token answered with 401 twice: the token server's grant does not satisfy the registry. */
  refused(what: string, where: string, scope: string): RegistryError {
    return new RegistryError('unauthorized', `${what}: registry ${where} refused the token issued for ${scope}${this.username ? ` to user "${this.username}"` : ''}; ${this.fix}`, { retryable: false });
  }

  /** Removes every secret this authorizer holds from `text`. */
  scrub(text: string): string {
    let out = text;
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) if (s) out = out.split(s).join('***');
    return out;
  }

  private missing(what: string): RegistryError {
    return new RegistryError('unauthorized', `${what}: registry ${this.transport.where} requires credentials and none are configured; ${this.fix.replace(/^check /, 'set ')}`, { retryable: false });
  }

  private rejected(what: string, where: string): RegistryError {
    return new RegistryError('unauthorized', `${what}: ${where} rejected the credentials of user "${this.username ?? ''}"; ${this.fix}`, { retryable: false });
  }

  private async token(scope: string, asked: string | undefined, signal?: AbortSignal): Promise<Token> {
    const cached = this.tokens.get(scope);
    if (cached && cached.expiresAt > this.now()) return cached;
    let p = this.pending.get(scope);
    if (!p) {
      const scopes = asked && !covers(scope, asked) ? [scope, asked] : [scope];
      p = this.fetchToken(scopes, signal).finally(() => this.pending.delete(scope));
      this.pending.set(scope, p);
    }
    const token = await p;
    this.tokens.set(scope, token);
    return token;
  }

  private async fetchToken(scopes: string[], signal?: AbortSignal): Promise<Token> {
    const bearer = this.bearer;
    if (!bearer) throw new RegistryError('protocol', 'token requested before any Bearer challenge');
    const url = new URL(bearer.realm);
    if (bearer.service) url.searchParams.set('service', bearer.service);
    for (const scope of scopes) if (scope) url.searchParams.append('scope', scope);
    const what = `token for ${scopes.join(' ') || 'the registry'}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.basicHeader) headers.authorization = this.basicHeader;
    const res = await this.transport.send({ method: 'GET', url, headers, signal }, what);
    if (res.statusCode === 401 || res.statusCode === 403) {
      await drain(res);
      if (!this.basicHeader) throw this.missing(what);
      throw this.rejected(what, `token server ${url.host}`);
    }
    if (res.statusCode !== 200) throw fromResponse(res.statusCode ?? 0, await readBody(res, 64 * 1024, what, signal).catch(() => undefined), what, `token server ${url.host}`);
    const body = await readBody(res, 1024 * 1024, what, signal);
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString()) as typeof parsed;
    } catch (err) {
      throw new RegistryError('protocol', `${what}: token server ${url.host} answered something that is not JSON`, { cause: err });
    }
    const value = typeof parsed.token === 'string' && parsed.token ? parsed.token : typeof parsed.access_token === 'string' ? parsed.access_token : '';
    if (!value || /[\s]/.test(value)) throw new RegistryError('protocol', `${what}: token server ${url.host} answered without a usable token`);
    this.secrets.add(value);
    const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60;
    return { value, expiresAt: this.now() + Math.max(1, lifetime - 10) * 1000 };
  }
}
