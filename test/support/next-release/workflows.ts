/**
 * TEST INFRASTRUCTURE: the "next release" of Ekiden's workflows, for the upgrade test
 * (test/fleet/upgrade.test.ts). Everything as in this release, except that RunnerWorkflow gains
 * a step before its first one (a timer) — a change of its steps that no runner started on the
 * previous release could replay, so only Worker Versioning keeps those runners alive.
 */
import { setWorkflowOptions, sleep } from '@temporalio/workflow';
import type { RunnerResult, RunnerWorkflowInput } from '../../../core/runner-spec.js';
import { versioned } from '../../../workflows/index.js';
import { RunnerWorkflow as thisRelease } from '../../../workflows/runner.js';

export * from '../../../workflows/index.js';

/** The next release's new first step. */
export const NEXT_RELEASE_STEP = '1ms';

export async function RunnerWorkflow(input: RunnerWorkflowInput): Promise<RunnerResult> {
  await sleep(NEXT_RELEASE_STEP);
  return thisRelease(input);
}
setWorkflowOptions(versioned('PINNED'), RunnerWorkflow);
