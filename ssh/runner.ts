/**
 * Control of the GitHub Actions runner inside a guest, over SSH (every driver, real VMs).
 *
 * Every function is one SSH round trip running a bash script sent on stdin (`bash -s`), and
 * is idempotent. The runner runs detached from the SSH session in its own session/process
 * group, under a small wrapper (`~/.ekiden/ekiden-runner-wrapper.sh`) that records:
 *   ~/.ekiden/runner.pid   pid of the wrapper = the runner's process group (written at start)
 *   ~/.ekiden/runner.exit  exit status of config.sh/run.sh (written when it ends)
 *   ~/.ekiden/runner.out   stdout+stderr of the runner
 * Secrets travel only inside the stdin script, exported as ACTIONS_RUNNER_INPUT_* variables:
 * never in the argv of ssh, bash, the wrapper, config.sh or run.sh (they are in those
 * processes' environments, readable by the same guest user only; the registration token is
 * unset before run.sh, and the runner itself drops ACTIONS_RUNNER_INPUT_* when it starts).
 * Guest requirements: bash, coreutils, grep; `setsid` (util-linux) or perl for detaching;
 * `find` and `base64` for collectDiag. Works on Linux and macOS guests.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { SshEndpoint } from '../drivers/types.js';
import { SshError, sshExec, sshExecStream } from './client.js';

export type RunnerCredential =
  | { kind: 'jit'; encodedJitConfig: string }
  | { kind: 'registration-token'; url: string; token: string; name: string; labels: string[]; runnerGroup?: string };

export interface LaunchRunnerResult {
  /** Pid of the runner's wrapper, which is also its process group id. */
  pid: number;
  /** A runner launched earlier is still alive; nothing was started. */
  alreadyRunning: boolean;
  /**
   * A runner was launched earlier in this guest (alive or not); nothing was started. An
   * ephemeral runner is never launched twice: check runnerStatus for how the first one ended.
   */
  alreadyLaunched: boolean;
}

export interface RunnerStatus {
  /** A runner was launched in this guest (its pid file exists). */
  launched: boolean;
  running: boolean;
  pid?: number;
  /** Exit status of config.sh (if it failed) or run.sh once the runner ended; 143 after
   * stopRunner's SIGTERM, absent when it was SIGKILLed. */
  exitCode?: number;
  /** The runner started a job: a `_diag/Worker_*.log` exists. */
  jobStarted: boolean;
  /** From the first `Job ID <id>` line of a Worker log: digits, or the GUID real runners log. */
  jobId?: string;
  /**
   * When the job started (epoch ms, guest clock, 1 s resolution): the Worker log's birth time,
   * or its mtime where the guest's filesystem/stat cannot tell birth times.
   */
  jobStartedAt?: number;
}

export interface StopRunnerResult {
  wasRunning: boolean;
  /** Still alive after the grace period, so its process group got SIGKILL. */
  forced: boolean;
}

interface Common {
  endpoint: SshEndpoint;
  /** The runner's directory (holding run.sh): relative to the guest user's HOME (a leading `~/`
   * is allowed), or absolute. */
  runnerDir: string;
  signal?: AbortSignal;
  /** Deadline for the whole SSH round trip. */
  timeoutMs?: number;
}

/** Single-quotes a string for bash. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const WRAPPER_MARK = 'ekiden-runner-wrapper';

function prelude(runnerDir: string): string {
  const dir = runnerDir.replace(/^~\//, '');
  if (!dir || dir.includes('\0')) throw new SshError('failed', `runnerDir "${runnerDir}" is not a usable path`);
  return `set -u
S="$HOME/.ekiden"
RD=${shellQuote(dir)}
case "$RD" in /*) ;; *) RD="$HOME/$RD" ;; esac
# True while pid $1 is our runner wrapper (not a zombie, not a reused pid).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q ${WRAPPER_MARK}
  elif command -v ps >/dev/null 2>&1; then
    ps -p "$1" -o command= 2>/dev/null | grep -q ${WRAPPER_MARK}
  fi
}
readpid() {
  p=$(cat "$S/runner.pid" 2>/dev/null) || p=
  case "$p" in '' | *[!0-9]*) p= ;; esac
}
`;
}

// Runs config.sh (registration tokens) and run.sh; holds no secret, in its text or argv.
const WRAPPER = `# ${WRAPPER_MARK}: runs the actions runner detached from SSH, records pid and exit status.
S="$HOME/.ekiden"
echo "$$" >"$S/runner.pid.tmp" && mv -f "$S/runner.pid.tmp" "$S/runner.pid"
# A handler (not SIG_IGN, which run.sh would inherit) keeps the wrapper alive to record the status.
trap ':' TERM INT HUP
rc=0
if [ "\${1:-}" = registration ]; then
  ./config.sh --unattended --ephemeral --replace --disableupdate || rc=$?
  unset ACTIONS_RUNNER_INPUT_TOKEN ACTIONS_RUNNER_INPUT_URL ACTIONS_RUNNER_INPUT_NAME ACTIONS_RUNNER_INPUT_LABELS ACTIONS_RUNNER_INPUT_RUNNERGROUP
fi
if [ "$rc" -eq 0 ]; then
  ./run.sh
  rc=$?
fi
echo "$rc" >"$S/runner.exit.tmp" && mv -f "$S/runner.exit.tmp" "$S/runner.exit"
`;

function credentialExports(credential: RunnerCredential): { mode: string; lines: string[]; secrets: string[] } {
  const q = shellQuote;
  if (credential.kind === 'jit') {
    return {
      mode: 'jit',
      lines: [`export ACTIONS_RUNNER_INPUT_JITCONFIG=${q(credential.encodedJitConfig)}`],
      secrets: [credential.encodedJitConfig],
    };
  }
  const lines = [
    `export ACTIONS_RUNNER_INPUT_URL=${q(credential.url)}`,
    `export ACTIONS_RUNNER_INPUT_TOKEN=${q(credential.token)}`,
    `export ACTIONS_RUNNER_INPUT_NAME=${q(credential.name)}`,
    `export ACTIONS_RUNNER_INPUT_LABELS=${q(credential.labels.join(','))}`,
  ];
  if (credential.runnerGroup !== undefined) lines.push(`export ACTIONS_RUNNER_INPUT_RUNNERGROUP=${q(credential.runnerGroup)}`);
  return { mode: 'registration', lines, secrets: [credential.token] };
}

function launchScript(runnerDir: string, credential: RunnerCredential, env: Record<string, string>) {
  const cred = credentialExports(credential);
  const envLines = Object.entries(env).map(([name, value]) => {
    if (!ENV_NAME.test(name)) throw new SshError('failed', `launchRunner: invalid environment variable name "${name}"`);
    return `export ${name}=${shellQuote(value)}`;
  });
  const detach = `"$S/${WRAPPER_MARK}.sh" ${cred.mode} </dev/null >>"$S/runner.out" 2>&1 &`;
  const script = `${prelude(runnerDir)}
main() {
  exec </dev/null
  umask 077
  mkdir -p "$S" || return 70
  # Serialise concurrent launches; a launch cut off while holding the lock loses it after ~30 s.
  n=0
  until mkdir "$S/launch.lock" 2>/dev/null; do
    n=$((n + 1))
    if [ "$n" -ge 300 ]; then rmdir "$S/launch.lock" 2>/dev/null; n=0; fi
    sleep 0.1
  done
  trap 'rmdir "$S/launch.lock" 2>/dev/null' EXIT
  readpid
  if [ -n "$p" ]; then
    if alive "$p"; then r=true; else r=false; fi
    printf '{"pid":%s,"alreadyRunning":%s,"alreadyLaunched":true}\\n' "$p" "$r"
    return 0
  fi
  if [ ! -x "$RD/run.sh" ]; then echo "no executable run.sh in $RD" >&2; return 66; fi
  cd "$RD" || return 66
  cat >"$S/${WRAPPER_MARK}.sh" <<'EKIDEN_WRAPPER_EOF'
${WRAPPER}EKIDEN_WRAPPER_EOF
${[...cred.lines, ...envLines].map((l) => `  ${l}`).join('\n')}
  if [ "$(id -u)" = 0 ]; then export RUNNER_ALLOW_RUNASROOT=1; fi
  rm -f "$S/runner.exit" "$S/runner.pid.tmp"
  if command -v setsid >/dev/null 2>&1; then
    setsid nohup bash ${detach}
  elif command -v perl >/dev/null 2>&1; then
    nohup perl -MPOSIX -e 'POSIX::setsid(); exec @ARGV or die "exec: $!"' bash ${detach}
  else
    nohup bash ${detach}
  fi
  n=0
  until [ -s "$S/runner.pid" ]; do
    n=$((n + 1))
    if [ "$n" -ge 100 ]; then echo "runner wrapper did not start within 10 s" >&2; return 71; fi
    sleep 0.1
  done
  readpid
  printf '{"pid":%s,"alreadyRunning":false,"alreadyLaunched":false}\\n' "$p"
}
main
`;
  return { script, secrets: [...cred.secrets, ...Object.values(env).filter((v) => v.length >= 8)] };
}

function redact(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

/** Runs a script with `bash -s` and parses the JSON on the last line of its stdout. */
async function runScript<T>(
  op: string,
  args: Common & { defaultTimeoutMs: number },
  script: string,
  secrets: string[] = [],
): Promise<T> {
  const res = await sshExec({
    endpoint: args.endpoint,
    command: 'bash -s',
    stdin: script,
    timeoutMs: args.timeoutMs ?? args.defaultTimeoutMs,
    signal: args.signal,
  });
  const last = res.stdout.trim().split('\n').pop() ?? '';
  if (res.exitCode === 0) {
    try {
      return JSON.parse(last) as T;
    } catch (err) {
      throw new SshError('failed', `${op}: unexpected output from the guest`, { cause: err });
    }
  }
  const detail = redact(res.stderr.trim().split('\n').slice(-1)[0] ?? '', secrets).slice(0, 300);
  throw new SshError(
    'failed',
    `${op}: guest script failed (${res.exitCode === null ? res.signal ?? 'no status' : `exit ${res.exitCode}`})${detail ? `: ${detail}` : ''}`,
  );
}

/**
 * Starts the runner detached in the guest, unless one was already launched there (then
 * nothing is started: a retried launch never starts a second runner).
 */
export async function launchRunner(
  args: Common & { credential: RunnerCredential; env?: Record<string, string> },
): Promise<LaunchRunnerResult> {
  const { script, secrets } = launchScript(args.runnerDir, args.credential, args.env ?? {});
  return runScript<LaunchRunnerResult>('launchRunner', { ...args, defaultTimeoutMs: 90_000 }, script, secrets);
}

export async function runnerStatus(args: Common): Promise<RunnerStatus> {
  const script = `${prelude(args.runnerDir)}
readpid
launched=false running=false pidj=null exitj=null job=false jobid=null jobat=null
if [ -n "$p" ]; then
  launched=true pidj=$p
  if alive "$p"; then running=true; fi
fi
e=$(cat "$S/runner.exit" 2>/dev/null) || e=
case "$e" in '' | *[!0-9]*) ;; *) exitj=$e ;; esac
for f in "$RD"/_diag/Worker_*.log; do
  [ -e "$f" ] || continue
  job=true
  if [ "$jobat" = null ]; then
    t=$(stat -c %W "$f" 2>/dev/null) || t=
    case "$t" in '' | 0 | *[!0-9]*) t=$(stat -c %Y "$f" 2>/dev/null || stat -f %B "$f" 2>/dev/null) || t= ;; esac
    case "$t" in '' | *[!0-9]*) ;; *) jobat=$t ;; esac
  fi
  id=$(grep -hoE 'Job ID [0-9A-Za-z-]+' "$f" 2>/dev/null | head -n 1)
  id=\${id#Job ID }
  if [ -n "$id" ]; then jobid="\\"$id\\""; break; fi
done
printf '{"launched":%s,"running":%s,"pid":%s,"exitCode":%s,"jobStarted":%s,"jobId":%s,"jobStartedAt":%s}\\n' \\
  "$launched" "$running" "$pidj" "$exitj" "$job" "$jobid" "$jobat"
`;
  const raw = await runScript<{
    launched: boolean;
    running: boolean;
    pid: number | null;
    exitCode: number | null;
    jobStarted: boolean;
    jobId: string | null;
    jobStartedAt: number | null;
  }>('runnerStatus', { ...args, defaultTimeoutMs: 30_000 }, script);
  const status: RunnerStatus = { launched: raw.launched, running: raw.running, jobStarted: raw.jobStarted };
  if (raw.pid !== null) status.pid = raw.pid;
  if (raw.exitCode !== null) status.exitCode = raw.exitCode;
  if (raw.jobId !== null) status.jobId = raw.jobId;
  if (raw.jobStartedAt !== null) status.jobStartedAt = raw.jobStartedAt * 1000;
  return status;
}

/**
 * SIGTERM to the runner's process group, SIGKILL after `graceMs` (default 5 s). Once the
 * wrapper has ended, what is left of its group (job processes) is killed. No-op when no runner
 * runs.
 */
export async function stopRunner(args: Common & { graceMs?: number }): Promise<StopRunnerResult> {
  const graceMs = args.graceMs ?? 5_000;
  const ticks = Math.max(0, Math.ceil(graceMs / 100));
  const script = `${prelude(args.runnerDir)}
readpid
if [ -z "$p" ] || ! alive "$p"; then echo '{"wasRunning":false,"forced":false}'; exit 0; fi
kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
n=0 forced=false
while alive "$p"; do
  if [ "$n" -ge ${ticks} ]; then forced=true; break; fi
  n=$((n + 1)); sleep 0.1
done
kill -KILL -- "-$p" 2>/dev/null
if [ "$forced" = true ]; then
  kill -KILL "$p" 2>/dev/null
  n=0
  while alive "$p" && [ "$n" -lt 50 ]; do n=$((n + 1)); sleep 0.1; done
fi
printf '{"wasRunning":true,"forced":%s}\\n' "$forced"
`;
  return runScript<StopRunnerResult>('stopRunner', { ...args, defaultTimeoutMs: graceMs + 30_000 }, script);
}

/**
 * Copies the runner's `_diag` tree into `destDir` on this host. Returns the copied files'
 * paths relative to destDir (sorted); empty when the guest has no `_diag`. Only regular files
 * are copied and guest-supplied names are confined to destDir.
 */
export async function collectDiag(args: Common & { destDir: string }): Promise<string[]> {
  // Frame: "#FILE <base64 name>" then the file's base64 lines ('#' is not in base64's alphabet).
  const script = `${prelude(args.runnerDir)}
cd "$RD/_diag" 2>/dev/null || exit 0
find . -type f -print0 | while IFS= read -r -d '' f; do
  f=\${f#./}
  printf '#FILE %s\\n' "$(printf '%s' "$f" | base64 | tr -d '\\n')"
  base64 <"$f" || true
done
`;
  const destDir = path.resolve(args.destDir);
  await fs.mkdir(destDir, { recursive: true });
  const copied: string[] = [];
  // Lines are handled strictly in order on one promise chain; the stream callback only queues.
  let chain: Promise<void> = Promise.resolve();
  let file: fs.FileHandle | undefined;
  let carry = ''; // base64 characters of the current file not yet decoded
  let partial = ''; // incomplete last line of the stream so far
  const closeFile = async () => {
    const fh = file;
    file = undefined;
    if (!fh) return;
    try {
      if (carry) await fh.write(Buffer.from(carry, 'base64'));
    } finally {
      carry = '';
      await fh.close();
    }
  };
  const handleLine = async (line: string) => {
    if (line.startsWith('#FILE ')) {
      await closeFile();
      const rel = safeRelative(Buffer.from(line.slice(6), 'base64').toString('utf8'));
      if (rel === undefined) return; // its data lines are dropped: no file is open
      const dest = path.join(destDir, rel);
      await fs.mkdir(path.dirname(dest), { recursive: true });
      file = await fs.open(dest, 'w', 0o644);
      copied.push(rel);
      return;
    }
    if (!file) return;
    carry += line.trim();
    const take = carry.length - (carry.length % 4);
    if (take > 0) {
      const bytes = Buffer.from(carry.slice(0, take), 'base64');
      carry = carry.slice(take);
      await file.write(bytes);
    }
  };
  const queue = (step: () => Promise<void>) => {
    chain = chain.then(step);
    // Marked handled here; the error is rethrown when the chain is awaited below.
    chain.catch(() => {});
  };
  let res: { exitCode: number | null; signal?: string };
  try {
    res = await sshExecStream({
      endpoint: args.endpoint,
      command: 'bash -s',
      stdin: script,
      timeoutMs: args.timeoutMs ?? 300_000,
      signal: args.signal,
      onStdout: (chunk) => {
        const lines = (partial + chunk.toString('latin1')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) queue(() => handleLine(line));
      },
    });
    if (partial) {
      const last = partial;
      queue(() => handleLine(last));
    }
  } finally {
    queue(closeFile);
    await chain.catch(() => {});
  }
  await chain;
  if (res.exitCode !== 0) {
    throw new SshError('failed', `collectDiag: guest script failed (${res.exitCode === null ? res.signal ?? 'no status' : `exit ${res.exitCode}`})`);
  }
  return copied.sort();
}

/** A guest-supplied relative path, or undefined when it could escape destDir. */
function safeRelative(name: string): string | undefined {
  if (!name || name.includes('\0') || name.startsWith('/')) return undefined;
  const parts = name.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return undefined;
  return parts.join('/');
}

