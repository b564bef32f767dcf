/**
 * The one way every Ekiden command reaches Temporal. Where the server is and how to talk to it
 * come from flags, else the fleet file's `temporal` section (address, namespace, `tls` with
 * caFile/certFile/keyFile/serverName, `apiKeyEnv`), else a Temporal client-config profile and the
 * environment (`TEMPORAL_PROFILE`, `TEMPORAL_CONFIG_FILE`, `TEMPORAL_ADDRESS`, `TEMPORAL_API_KEY`,
 * `TEMPORAL_TLS_*`, read by @temporalio/envconfig), else 127.0.0.1:7233 in plain text.
 *
 * Credentials are read when connecting, not when the config is parsed, and checked first: an
 * unreadable file, a certificate that expired or is not valid yet, or a key that is not the
 * certificate's each stop with one line naming the setting. A connection that still fails is
 * probed with a TLS handshake of our own, so the line says why (the server's certificate is not
 * signed by the configured CA, the server wants a client certificate, it speaks or does not speak
 * TLS, it refused the API key) and names the setting to change. Secrets (keys, API keys) are held
 * only in memory: never logged, never in argv, never in a message.
 */
import { Connection, type TLSConfig } from '@temporalio/client';
import { loadClientConfigProfile } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, type ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { ConfigError } from '../config/fields.js';
import type { TemporalSettings } from '../config/fleet.js';
import { errorMessage } from '../core/failures.js';
import { unreachableReason } from './dev-server.js';

type Env = Record<string, string | undefined>;

/** PEM bytes from a file or inline data, and the setting that named them (for error lines). */
export type PemSource = { setting: string } & ({ path: string } | { data: Uint8Array });

/** How to talk to the server, before anything is read. */
export interface TemporalCredentials {
  /** TLS on when present; `{}` is TLS with the system's CAs. */
  tls?: { ca?: PemSource; cert?: PemSource; key?: PemSource; serverName?: string; serverNameSetting?: string };
  apiKey?: { env: string; setting: string } | { value: string; setting: string };
  /** Where settings not given would go, for the lines that name one: the file's temporal section (default) or the environment. */
  origin?: 'env';
  /** Extra gRPC metadata from a profile (`grpc_meta`); never logged. */
  metadata?: Record<string, string>;
}

/** Credentials as read, ready for Connection.connect / NativeConnection.connect. */
export interface LoadedCredentials {
  tls?: TLSConfig | true;
  apiKey?: string;
  metadata?: Record<string, string>;
}

export function credentialsFromSettings(t: Pick<TemporalSettings, 'tls' | 'apiKeyEnv'>): TemporalCredentials {
  const out: TemporalCredentials = {};
  if (t.tls) {
    const files = t.tls === true ? {} : t.tls;
    const tls: NonNullable<TemporalCredentials['tls']> = {};
    if (files.caFile) tls.ca = { setting: 'temporal.tls.caFile', path: files.caFile };
    if (files.certFile) tls.cert = { setting: 'temporal.tls.certFile', path: files.certFile };
    if (files.keyFile) tls.key = { setting: 'temporal.tls.keyFile', path: files.keyFile };
    if (files.serverName) Object.assign(tls, { serverName: files.serverName, serverNameSetting: 'temporal.tls.serverName' });
    out.tls = tls;
  }
  if (t.apiKeyEnv) out.apiKey = { env: t.apiKeyEnv, setting: 'temporal.apiKeyEnv' };
  return out;
}

/** A parsed `temporal` section's credentials when it has any, else those of the environment's client-config profile. */
export function credentialsFor(t: Pick<TemporalSettings, 'tls' | 'apiKeyEnv'>, env: Env): TemporalCredentials {
  return t.tls || t.apiKeyEnv ? credentialsFromSettings(t) : (profileFromEnv(env)?.credentials ?? {});
}

/** Whether the environment names a client-config profile or connection settings envconfig reads. */
export function envNamesConnection(env: Env): boolean {
  return Object.keys(env).some((k) => (k === 'TEMPORAL_ADDRESS' || k === 'TEMPORAL_PROFILE' || k === 'TEMPORAL_CONFIG_FILE' || k === 'TEMPORAL_API_KEY' || k.startsWith('TEMPORAL_TLS') || k.startsWith('TEMPORAL_GRPC_META_')) && Boolean(env[k]));
}

/**
 * The client-config profile (TEMPORAL_PROFILE, else "default", from TEMPORAL_CONFIG_FILE or the
 * default file) with the environment's overrides — undefined when the environment names none.
 */
export function profileFromEnv(env: Env): { address?: string; namespace?: string; credentials: TemporalCredentials } | undefined {
  if (!envNamesConnection(env)) return undefined;
  const where = env.TEMPORAL_PROFILE ? `profile ${env.TEMPORAL_PROFILE}` : 'the Temporal client config';
  let profile: ReturnType<typeof loadClientConfigProfile>;
  try {
    profile = loadClientConfigProfile({ ...(env.TEMPORAL_PROFILE ? { profile: env.TEMPORAL_PROFILE } : {}), overrideEnvVars: env as Record<string, string> });
  } catch (err) {
    throw new ConfigError(`Temporal client config (TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE): ${errorMessage(err).split('\n')[0]}`, { cause: err });
  }
  const credentials: TemporalCredentials = { origin: 'env' };
  const source = (s: { path: string } | { data: string | Uint8Array } | undefined, envPath: string, envData: string): PemSource | undefined => {
    if (!s) return undefined;
    if ('path' in s) return { setting: env[envPath] ? envPath : `${where}: tls path`, path: s.path };
    return { setting: env[envData] ? envData : `${where}: tls data`, data: typeof s.data === 'string' ? Buffer.from(s.data) : s.data };
  };
  const t = profile.tls;
  if (t && !t.disabled) {
    const tls: NonNullable<TemporalCredentials['tls']> = {};
    const ca = source(t.serverCACert, 'TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_TLS_SERVER_CA_CERT_DATA');
    const cert = source(t.clientCert, 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_CERT_DATA');
    const key = source(t.clientKey, 'TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_TLS_CLIENT_KEY_DATA');
    if (ca) tls.ca = ca;
    if (cert) tls.cert = cert;
    if (key) tls.key = key;
    if (t.serverName) Object.assign(tls, { serverName: t.serverName, serverNameSetting: env.TEMPORAL_TLS_SERVER_NAME ? 'TEMPORAL_TLS_SERVER_NAME' : where });
    credentials.tls = tls;
  }
  // envconfig turns TLS on by itself when an API key is set (Temporal Cloud); so does this.
  if (profile.apiKey) {
    credentials.apiKey = { value: profile.apiKey, setting: env.TEMPORAL_API_KEY ? 'TEMPORAL_API_KEY' : `${where}: api_key` };
    if (!credentials.tls && !(t && t.disabled)) credentials.tls = {};
  }
  if (profile.grpcMeta && Object.keys(profile.grpcMeta).length) credentials.metadata = { ...profile.grpcMeta };
  return {
    ...(profile.address ? { address: profile.address } : {}),
    ...(profile.namespace ? { namespace: profile.namespace } : {}),
    credentials,
  };
}

function readPem(source: PemSource, what: string): Buffer {
  if ('data' in source) return Buffer.from(source.data);
  try {
    return readFileSync(source.path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory, not a file' : errorMessage(err);
    throw new ConfigError(`${source.setting}: cannot read ${what} ${source.path}: ${why}`);
  }
}

function where(source: PemSource): string {
  return 'path' in source ? ` in ${source.path}` : '';
}

/** The certificate's PEM bytes (read once) and the certificate they hold. */
function certificate(source: PemSource, what: string): { pem: Buffer; cert: X509Certificate } {
  const pem = readPem(source, what);
  try {
    return { pem, cert: new X509Certificate(pem) };
  } catch {
    throw new ConfigError(`${source.setting}: ${what}${where(source)} is not a PEM certificate; give the certificate file (-----BEGIN CERTIFICATE-----)`);
  }
}

/**
 * Reads and checks the credentials; throws ConfigError (one line naming the setting) for a file
 * that cannot be read or parsed, a client certificate outside its validity period, a key that is
 * not the certificate's, or an API key variable that is empty.
 */
export function loadCredentials(c: TemporalCredentials, env: Env, now = Date.now()): LoadedCredentials {
  const out: LoadedCredentials = {};
  if (c.tls) {
    const tls: TLSConfig = {};
    if (c.tls.ca) {
      tls.serverRootCACertificate = certificate(c.tls.ca, 'the CA certificate').pem;
    }
    if (c.tls.cert || c.tls.key) {
      if (!c.tls.cert || !c.tls.key) {
        const given = (c.tls.cert ?? c.tls.key)!;
        throw new ConfigError(`${given.setting}: a client certificate needs both its certificate and its private key; give the other one too`);
      }
      const { pem: certPem, cert } = certificate(c.tls.cert, 'the client certificate');
      const from = Date.parse(cert.validFrom);
      const to = Date.parse(cert.validTo);
      if (Number.isFinite(to) && to < now) {
        throw new ConfigError(`${c.tls.cert.setting}: the client certificate${where(c.tls.cert)} expired on ${new Date(to).toISOString()}; renew it (the server refuses an expired certificate)`);
      }
      if (Number.isFinite(from) && from > now) {
        throw new ConfigError(`${c.tls.cert.setting}: the client certificate${where(c.tls.cert)} is not valid before ${new Date(from).toISOString()}; check this host's clock or the certificate`);
      }
      const keyPem = readPem(c.tls.key, 'the private key');
      let key: ReturnType<typeof createPrivateKey>;
      try {
        key = createPrivateKey(keyPem);
      } catch {
        throw new ConfigError(`${c.tls.key.setting}: the private key${where(c.tls.key)} is not a PEM private key (or it is encrypted; give an unencrypted key)`);
      }
      if (!cert.checkPrivateKey(key)) {
        throw new ConfigError(`${c.tls.key.setting}: the private key${where(c.tls.key)} does not belong to the client certificate (${c.tls.cert.setting}); give the key the certificate was made for`);
      }
      tls.clientCertPair = { crt: certPem, key: keyPem };
    }
    if (c.tls.serverName) tls.serverNameOverride = c.tls.serverName;
    out.tls = Object.keys(tls).length ? tls : true;
  }
  if (c.apiKey) {
    const value = 'env' in c.apiKey ? env[c.apiKey.env] : c.apiKey.value;
    if (!value) throw new ConfigError(`${c.apiKey.setting}: environment variable ${'env' in c.apiKey ? c.apiKey.env : ''} is empty; export the Temporal API key there`);
    out.apiKey = value;
  }
  if (c.metadata) out.metadata = c.metadata;
  return out;
}

/** What a TLS handshake of our own to the server found. */
type Probe =
  | { ok: true; alpn: string | false }
  | { ok: false; code: string; message: string };

async function probeTls(host: string, port: number, opts: TlsConnectionOptions, timeoutMs: number): Promise<Probe> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (p: Probe) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(p);
    };
    const socket = tlsConnect({ host, port, ALPNProtocols: ['h2'], ...opts });
    const timer = setTimeout(() => done({ ok: false, code: 'TIMEOUT', message: 'no TLS handshake within the timeout' }), timeoutMs);
    // A TLS 1.3 server checks the client's certificate after the handshake: its alert comes just after.
    socket.once('secureConnect', () => setTimeout(() => done({ ok: true, alpn: socket.alpnProtocol ?? false }), 400));
    socket.once('error', (err: Error & { code?: string }) => done({ ok: false, code: err.code ?? '', message: err.message }));
    socket.once('close', () => done({ ok: false, code: 'CLOSED', message: 'the server closed the connection' }));
  });
}

function splitHostPort(address: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(address);
  const host = (m ? m[1]! : address).replace(/^\[(.*)\]$/, '$1');
  return { host, port: m ? Number(m[2]) : 7233 };
}

const WRONG_CA = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_UNTRUSTED']);

/**
 * Why connecting to `address` with `c` failed (`err` is the SDK's error): one line naming the
 * setting to change when the reason is TLS or credentials, else the transport's reason.
 */
export async function connectFailure(address: string, c: TemporalCredentials, loaded: LoadedCredentials, err: unknown, timeoutMs = 5_000): Promise<string> {
  const chain: string[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && chain.length < 5; e = (e as { cause?: unknown }).cause) chain.push(errorMessage(e));
  const text = chain.join(' | ').replace(/\s+/g, ' ');
  const { host, port } = splitHostPort(address);
  const env = c.origin === 'env';
  const caSetting = c.tls?.ca?.setting ?? (env ? 'TEMPORAL_TLS_SERVER_CA_CERT_PATH' : 'temporal.tls.caFile');
  const certSetting = c.tls?.cert?.setting ?? (env ? 'TEMPORAL_TLS_CLIENT_CERT_PATH' : 'temporal.tls.certFile');
  const keySetting = c.tls?.key?.setting ?? (env ? 'TEMPORAL_TLS_CLIENT_KEY_PATH' : 'temporal.tls.keyFile');
  if (/\b401\b|UNAUTHENTICATED/.test(text) && !/refused/i.test(text)) {
    return c.apiKey
      ? `the server refused the API key (401 Unauthenticated); check the key in ${c.apiKey.setting}${'env' in c.apiKey ? ` (${c.apiKey.env})` : ''}`
      : 'the server wants credentials (401 Unauthenticated); set an API key with temporal.apiKeyEnv (or TEMPORAL_API_KEY), or a client certificate with temporal.tls.certFile and keyFile';
  }
  if (/\b403\b|PERMISSION_DENIED/.test(text)) {
    return `the server refused these credentials (permission denied)${c.apiKey ? `; check ${c.apiKey.setting}` : ''}${c.tls?.cert ? `; check that ${c.tls.cert.setting} may use this namespace` : ''}`;
  }
  if (loaded.tls) {
    const tls = loaded.tls === true ? {} : loaded.tls;
    const opts: TlsConnectionOptions = {
      ...(tls.serverRootCACertificate ? { ca: Buffer.from(tls.serverRootCACertificate) } : {}),
      ...(tls.clientCertPair ? { cert: Buffer.from(tls.clientCertPair.crt), key: Buffer.from(tls.clientCertPair.key) } : {}),
      servername: tls.serverNameOverride ?? (/^[\d.]+$|:/.test(host) ? undefined : host),
    };
    if (opts.servername === undefined) delete opts.servername;
    const probe = await probeTls(host, port, opts, timeoutMs);
    if (!probe.ok) {
      if (probe.code === 'ECONNREFUSED' || probe.code === 'ENOTFOUND' || probe.code === 'EAI_AGAIN' || probe.code === 'EHOSTUNREACH') return unreachableReason(err);
      if (WRONG_CA.has(probe.code)) {
        return c.tls?.ca
          ? `TLS: the server's certificate is not signed by the CA in ${caSetting}${c.tls.ca && 'path' in c.tls.ca ? ` (${c.tls.ca.path})` : ''} (${probe.code}); give the CA that signed it`
          : `TLS: the server's certificate is not signed by a CA this host trusts (${probe.code}); give its CA with ${caSetting}`;
      }
      if (probe.code === 'CERT_HAS_EXPIRED') return `TLS: the server's certificate has expired (${probe.code}); renew the server's certificate`;
      if (probe.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
        return `TLS: the server's certificate is not for ${tls.serverNameOverride ?? host} (${probe.message.split(':')[0]}); set ${c.tls?.serverNameSetting ?? 'temporal.tls.serverName'} to the name in its certificate`;
      }
      if (/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/.test(probe.code) || /certificate required/i.test(probe.message)) {
        return tls.clientCertPair
          ? `TLS: the server refused the client certificate in ${certSetting} (${probe.code}); give one signed by the CA the server trusts`
          : `TLS: the server requires a client certificate; set ${certSetting} and ${keySetting}`;
      }
      if (/EXPIRED/.test(probe.code)) return `TLS: the server refused the client certificate in ${certSetting} as expired (${probe.code}); renew it`;
      if (/UNKNOWN_CA|BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|DECRYPT_ERROR/.test(probe.code)) {
        return `TLS: the server refused the client certificate in ${certSetting} (${probe.code}); give one signed by the CA the server trusts`;
      }
      if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNEXPECTED_MESSAGE|RECORD_LAYER_FAILURE/.test(probe.code) || probe.code === 'ECONNRESET') {
        return `TLS: the server at ${address} does not speak TLS (${probe.code}); drop temporal.tls (and TEMPORAL_TLS*), or give the server's TLS port`;
      }
      return `TLS: ${probe.code || 'handshake failed'}: ${probe.message.split('\n')[0]}`;
    }
    if (probe.alpn !== 'h2') return `TLS: the server at ${address} did not offer HTTP/2 (ALPN h2); a proxy in front of Temporal must pass gRPC`;
    return unreachableReason(err);
  }
  // Plain text: a server that speaks TLS only shows as a hang; say so when it does.
  if (/deadline|timed out|timeout|broken pipe|stream closed|connection reset/i.test(text)) {
    const probe = await probeTls(host, port, { rejectUnauthorized: false }, Math.min(timeoutMs, 3_000));
    // A refused handshake (the server wants a client certificate) is TLS too.
    if (probe.ok || /^ERR_SSL_/.test(probe.code)) return `the server at ${address} speaks TLS; set temporal.tls (true for a public CA, or caFile for your own) or TEMPORAL_TLS=true`;
  }
  return unreachableReason(err);
}

/** The options both connection kinds take, for `address` with loaded credentials. */
export function connectOptions(address: string, loaded: LoadedCredentials): { address: string; tls?: TLSConfig | true; apiKey?: string; metadata?: Record<string, string> } {
  return {
    address,
    ...(loaded.tls ? { tls: loaded.tls } : {}),
    ...(loaded.apiKey ? { apiKey: loaded.apiKey } : {}),
    ...(loaded.metadata ? { metadata: loaded.metadata } : {}),
  };
}

export class TemporalConnectError extends Error {
  override readonly name = 'TemporalConnectError';
}

/** A client Connection to `address`, or a TemporalConnectError with the one line of connectFailure. */
export async function connectClient(address: string, c: TemporalCredentials, env: Env, opts: { timeoutMs?: number; loaded?: LoadedCredentials } = {}): Promise<Connection> {
  const loaded = opts.loaded ?? loadCredentials(c, env);
  try {
    const connection = await Connection.connect({ ...connectOptions(address, loaded), ...(opts.timeoutMs ? { connectTimeout: opts.timeoutMs } : {}) });
    return connection;
  } catch (err) {
    throw new TemporalConnectError(`cannot reach Temporal at ${address}: ${await connectFailure(address, c, loaded, err, opts.timeoutMs)}`, { cause: err });
  }
}

/** A worker's NativeConnection to `address`, with the same one-line failures (`loaded`: credentials already read and checked). */
export async function connectNative(address: string, c: TemporalCredentials, env: Env, loaded: LoadedCredentials = loadCredentials(c, env)): Promise<NativeConnection> {
  let connection: NativeConnection | undefined;
  try {
    connection = await NativeConnection.connect(connectOptions(address, loaded) as Parameters<typeof NativeConnection.connect>[0]);
    // Some failures (a refused client certificate) show only on the first call: one call proves the connection.
    await connection.workflowService.getSystemInfo({});
    return connection;
  } catch (err) {
    await connection?.close().catch(() => {});
    throw new TemporalConnectError(`cannot reach Temporal at ${address}: ${await connectFailure(address, c, loaded, err)}`, { cause: err });
  }
}
