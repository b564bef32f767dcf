/**
 * Shared set-up for tests against the fake driver: a temp dir, an image template whose
 * `actions-runner/` holds tiny file-driven stand-ins for run.sh and config.sh, and cleanup
 * that leaves no guest process behind.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runToken, vmName } from '../../core/names.js';
import { FakeDriver, type FakeDriverOptions } from '../../drivers/fake.js';
import { GUEST_FLAG } from '../../drivers/fake-procs.js';

export const IMAGE = 'ekiden/fake-test:1';

/**
 * run.sh stand-in, driven by files in its directory: records the credential env it got,
 * writes `_diag/Runner_*.log`, waits for `.take-job`, writes `_diag/Worker_*.log` with
 * `Job ID 42`, waits for `.finish-job` and exits with the number in it.
 * `.ignore-term` makes it (and its sleeps) ignore SIGTERM.
 */
export const RUN_SH = `#!/usr/bin/env bash
[ -e .ignore-term ] && trap '' TERM
mkdir -p _diag
printf '%s' "\${ACTIONS_RUNNER_INPUT_JITCONFIG:-}" > .seen-jitconfig
printf '%s' "\${ACTIONS_RUNNER_INPUT_TOKEN:-}" > .seen-token-by-run
echo "runner up" > _diag/Runner_20240101-000000-utc.log
until [ -e .take-job ]; do sleep 0.05; done
echo "[2024-01-01 00:00:01Z INFO JobRunner] Job ID 42" > _diag/Worker_20240101-000001-utc.log
until [ -e .finish-job ]; do sleep 0.05; done
read -r code < .finish-job
exit "\${code:-0}"
`;

export const CONFIG_SH = `#!/usr/bin/env bash
{
  echo "args=$*"
  echo "url=\${ACTIONS_RUNNER_INPUT_URL:-}"
  echo "token=\${ACTIONS_RUNNER_INPUT_TOKEN:-}"
  echo "name=\${ACTIONS_RUNNER_INPUT_NAME:-}"
  echo "labels=\${ACTIONS_RUNNER_INPUT_LABELS:-}"
  echo "group=\${ACTIONS_RUNNER_INPUT_RUNNERGROUP:-}"
  echo "runasroot=\${RUNNER_ALLOW_RUNASROOT:-}"
} > .configured
[ -e .config-fails ] && exit 3
exit 0
`;

export interface FakeHost {
  dir: string;
  template: string;
  root: string;
  driver: FakeDriver;
  /** A fresh VM name that parseVmName accepts. */
  name(): string;
  /** Pulls, clones and starts a fresh VM; returns its name. */
  startVm(driver?: FakeDriver): Promise<string>;
  /** Deletes every VM, then kills and returns any guest process still alive (expect none). */
  cleanup(): Promise<number[]>;
}

export async function createFakeHost(opts: Partial<FakeDriverOptions> = {}): Promise<FakeHost> {
  const dir = await mkdtemp(join(tmpdir(), 'ekiden-fake-'));
  const template = join(dir, 'template');
  await mkdir(join(template, 'actions-runner'), { recursive: true });
  await writeFile(join(template, 'actions-runner', 'run.sh'), RUN_SH);
  await writeFile(join(template, 'actions-runner', 'config.sh'), CONFIG_SH);
  await chmod(join(template, 'actions-runner', 'run.sh'), 0o755);
  await chmod(join(template, 'actions-runner', 'config.sh'), 0o755);
  const root = join(dir, 'root');
  const driver = new FakeDriver({ root, images: { [IMAGE]: template }, ...opts });
  const name = () => vmName({ pool: 'fk', token: runToken(randomUUID()), attempt: 1 });
  return {
    dir,
    template,
    root,
    driver,
    name,
    async startVm(d = driver) {
      const vm = name();
      await d.pullImage({ image: IMAGE });
      await d.clone({ image: IMAGE, name: vm });
      await d.start({ name: vm });
      return vm;
    },
    async cleanup() {
      for (const vm of await driver.list()) await driver.delete({ name: vm.name });
      const strays = guestPidsUnder(root);
      for (const pid of strays) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await rm(dir, { recursive: true, force: true });
      return strays;
    },
  };
}

export function guestPidsUnder(root: string): number[] {
  return pidsWhoseCmdline((cmd) => cmd.includes(GUEST_FLAG) && cmd.includes(root));
}

/** Linux: pids whose NUL-separated argv satisfies the predicate (zombies have none). */
export function pidsWhoseCmdline(pred: (cmdline: string) => boolean): number[] {
  return procEntries('cmdline').filter(([, text]) => pred(text)).map(([pid]) => pid);
}

function procEntries(file: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      out.push([Number(name), readFileSync(`/proc/${name}/${file}`).toString('utf8')]);
    } catch {
      // gone or not ours
    }
  }
  return out;
}

export { isLivePid } from '../../drivers/procs.js';

export { waitFor } from '../support/wait.js';
