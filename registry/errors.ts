/**
 * The one error type of the registry client. Every failure of a registry operation is a
 * RegistryError with a `code` saying what went wrong and `retryable` saying whether the same
 * call may succeed later unchanged (the registry or the network was down or overloaded).
 * Messages are one line, name the registry and the operation, carry the registry's own error
 * codes and messages when it sent some, and never contain a credential; the underlying error is
 * kept as `cause`.
 */

export type RegistryErrorCode =
  /** The registry (or its token server) rejected the credentials, or wants some and got none. */
  | 'unauthorized'
  /** Authenticated, but not allowed to do this (403, DENIED). */
  | 'denied'
  /** No such repository, manifest, tag or blob. */
  | 'not-found'
  /** Connection refused/reset/timed out, 5xx, 429: try again later. */
  | 'unavailable'
  /** Bytes did not hash to the digest they were announced with. */
  | 'digest-mismatch'
  /** The registry's TLS certificate could not be verified, or TLS failed. */
  | 'tls'
  /** The registry answered something the protocol does not allow. */
  | 'protocol'
  /** A manifest, blob or image bigger than the caller's limit. */
  | 'too-large'
  /** The registry refused the request as invalid (4xx other than the above). */
  | 'rejected'
  /** A bad argument or configuration on this side (endpoint, repository name, image dir). */
  | 'invalid'
  /** An artifact of a type or shape this client does not handle. */
  | 'unsupported'
  /** Reading or writing a local file failed. */
  | 'io'
  /** The caller's AbortSignal fired. */
  | 'aborted';

const RETRYABLE: ReadonlySet<RegistryErrorCode> = new Set(['unavailable']);

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  readonly code: RegistryErrorCode;
  readonly retryable: boolean;
  /** HTTP status when the error came from a registry response. */
  readonly status?: number;
  /** The registry's error codes (`{errors:[{code}]}`), e.g. ['BLOB_UNKNOWN']. */
  readonly registryCodes: string[];

  constructor(code: RegistryErrorCode, message: string, options: { cause?: unknown; status?: number; registryCodes?: string[]; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE.has(code);
    this.status = options.status;
    this.registryCodes = options.registryCodes ?? [];
  }
}

export function isRegistryError(err: unknown, code?: RegistryErrorCode): err is RegistryError {
  return err instanceof RegistryError && (code === undefined || err.code === code);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTDOWN', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE',
]);

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'INVALID_CA', 'ERR_SSL_WRONG_VERSION_NUMBER', 'EPROTO', 'ERR_OSSL_PEM_NO_START_LINE',
]);

function errnoCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}

export function isAbort(err: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return true;
  const e = err as { name?: unknown; code?: unknown } | undefined;
  return e?.name === 'AbortError' || e?.code === 'ABORT_ERR';
}

/**
 * A RegistryError for an error thrown by the network or TLS layer while doing `what` against
 * `where` (a URL without credentials). RegistryErrors pass through unchanged.
 */
export function fromTransportError(err: unknown, what: string, where: string, signal?: AbortSignal): RegistryError {
  if (err instanceof RegistryError) return err;
  if (isAbort(err, signal)) return new RegistryError('aborted', `${what}: cancelled`, { cause: err });
  const code = errnoCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (code && (TLS_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || code.startsWith('ERR_OSSL_'))) {
    return new RegistryError('tls', `${what}: TLS verification of ${where} failed: ${detail} (${code}); give the client the CA certificate that signed the registry's certificate (caFile / ca)`, { cause: err });
  }
  if ((code && NETWORK_CODES.has(code)) || /socket hang up|timed out/i.test(detail)) {
    return new RegistryError('unavailable', `${what}: registry ${where} unreachable: ${detail}${code && !detail.includes(code) ? ` (${code})` : ''}`, { cause: err });
  }
  return new RegistryError('unavailable', `${what}: request to ${where} failed: ${detail}`, { cause: err });
}

/** The registry's `{errors:[{code,message,detail}]}` body, when it is one. */
export function parseRegistryErrors(body: Buffer | string | undefined): Array<{ code: string; message: string }> {
  if (!body || body.length === 0) return [];
  try {
    const parsed = JSON.parse(body.toString()) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    if (!Array.isArray(parsed.errors)) return [];
    return parsed.errors.map((e) => ({ code: typeof e.code === 'string' ? e.code : 'UNKNOWN', message: typeof e.message === 'string' ? e.message : '' }));
  } catch {
    return [];
  }
}

/** A RegistryError for a response with an unexpected status. */
export function fromResponse(status: number, body: Buffer | undefined, what: string, where: string): RegistryError {
  const errors = parseRegistryErrors(body);
  const codes = errors.map((e) => e.code);
  const said = errors.length > 0 ? `: ${errors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ')}` : '';
  const base = `${what}: ${where} answered ${status}${said}`;
  const opts = { status, registryCodes: codes };
  if (status === 401) return new RegistryError('unauthorized', base, opts);
  if (status === 403 || codes.includes('DENIED')) return new RegistryError('denied', base, opts);
  if (status === 404) return new RegistryError('not-found', base, opts);
  if (status === 429 || status >= 500) return new RegistryError('unavailable', base, opts);
  if (codes.includes('DIGEST_INVALID')) return new RegistryError('digest-mismatch', base, opts);
  if (status === 413) return new RegistryError('too-large', base, opts);
  if (status >= 400) return new RegistryError('rejected', base, opts);
  return new RegistryError('protocol', base, opts);
}
