/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * Types shared by the GitHub emulator and the runner stand-in: the files inside a JIT config
 * and the emulator's internal runner protocol (`/_emulator/runner-api/...`). The real runner's
 * broker/pipelines protocol is not emulated; this one is small and private to the two.
 * Type-only module: the stand-in imports it with `import type`, so its compiled entry stays a
 * single self-contained file.
 */

/** Runner version the stand-in reports, like actions/runner's. */
export const STANDIN_RUNNER_VERSION = '2.336.0';

/** Contents of `.runner` (JSON), as in actions/runner's RunnerSettings. */
export interface RunnerSettingsFile {
  agentId: number;
  agentName: string;
  poolId: number;
  poolName: string;
  /** Where the runner talks to the service: the emulator's `runnerBaseUrl`. */
  serverUrl: string;
  /** Repo, org or enterprise web URL the runner was registered against. */
  gitHubUrl: string;
  workFolder: string;
  ephemeral: boolean;
  disableUpdate?: boolean;
  isHostedServer: boolean;
  useV2Flow: boolean;
}

/** Contents of `.credentials` (JSON). Values are strings, as the real runner writes them. */
export interface RunnerCredentialsFile {
  scheme: 'OAuth';
  data: {
    clientId: string;
    authorizationUrl: string;
    requireFipsCryptography: 'True' | 'False';
  };
}

/**
 * Contents of `.credentials_rsaparams` (JSON). The real file holds an RSA private key; here
 * the fields are opaque random values and `d` is the client secret the emulator checks.
 */
export interface RunnerRsaParamsFile {
  d: string;
  dp: string;
  dq: string;
  exponent: string;
  inverseQ: string;
  modulus: string;
  p: string;
  q: string;
}

/** Decoded `encoded_jit_config`: file name → base64 of the file's content. */
export interface JitConfigFiles {
  '.runner': string;
  '.credentials': string;
  '.credentials_rsaparams': string;
}

// ---- runner protocol: everything below lives under {serverUrl}/_emulator/runner-api ----

/** POST /oauth2/token */
export interface TokenRequest {
  client_id: string;
  client_secret: string;
}
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

/** POST /sessions (Bearer access token) */
export interface SessionRequest {
  os: string;
  arch: string;
  version: string;
  hostname: string;
}
export interface SessionResponse {
  session_id: string;
  runner: { id: number; name: string; ephemeral: boolean };
  /** Longest wait the server honours for one message poll. */
  poll_timeout_ms: number;
}

export interface JobStepMessage {
  number: number;
  name: string;
  run: string;
}

/** GET /sessions/{id}/messages?wait_ms=N → 200 one of these, or 204 when nothing came. */
export type RunnerMessage =
  | {
      type: 'job';
      job: { id: number; run_id: number; name: string; repo: string; labels: string[]; steps: JobStepMessage[] };
    }
  | { type: 'job-cancel'; job_id: number };

export type JobConclusion = 'success' | 'failure' | 'cancelled';

/** POST /jobs/{id}/steps → 204 */
export interface StepReport {
  number: number;
  status: 'in_progress' | 'completed';
  conclusion?: JobConclusion | 'skipped';
  exit_code?: number | null;
  /** Tail of the step's combined output. */
  log?: string;
}

/** POST /jobs/{id}/complete → 200 CompleteResponse; 409 when the server already ended the job. */
export interface CompleteRequest {
  conclusion: JobConclusion;
}
export interface CompleteResponse {
  runner_deleted: boolean;
}

/**
 * POST {origin}/actions/runner-registration with `Authorization: RemoteAuth <token>` — the
 * registration-token path (`config.sh`). `runner_event: 'register'` → 201 RegistrationResponse;
 * `runner_event: 'remove'` (remove token) → 204.
 */
export interface RegistrationRequest {
  url: string;
  runner_event: 'register' | 'remove';
  name?: string;
  labels?: string[];
  ephemeral?: boolean;
  replace?: boolean;
  work_folder?: string;
  runner_group?: string;
  disable_update?: boolean;
  os?: string;
  arch?: string;
  version?: string;
  /** For `remove`: the runner to remove. */
  agent_id?: number;
}
export interface RegistrationResponse {
  runner: { id: number; name: string };
  /** Same shape as a decoded JIT config. */
  files: JitConfigFiles;
}
