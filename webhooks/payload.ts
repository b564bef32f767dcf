/**
 * What the receiver needs from a `workflow_job` webhook payload — action, job id, labels,
 * runner name — checked field by field so a malformed delivery is a 400 naming the field.
 */
export type WorkflowJobAction = 'queued' | 'in_progress' | 'completed' | 'waiting';

export interface WorkflowJobFacts {
  action: WorkflowJobAction;
  jobId: string;
  labels: string[];
  runnerName?: string;
  /** `owner/repo` when the payload names it (for logs). */
  repo?: string;
}

export class PayloadError extends Error {
  override readonly name = 'PayloadError';
}

const ACTIONS: readonly WorkflowJobAction[] = ['queued', 'in_progress', 'completed', 'waiting'];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseWorkflowJob(body: unknown): WorkflowJobFacts {
  if (!isRecord(body)) throw new PayloadError('payload must be a JSON object');
  const action = body['action'];
  if (typeof action !== 'string') throw new PayloadError('action: missing');
  if (!(ACTIONS as readonly string[]).includes(action)) throw new PayloadError(`action: "${action}" is not one of ${ACTIONS.join(', ')}`);
  const job = body['workflow_job'];
  if (!isRecord(job)) throw new PayloadError('workflow_job: missing or not an object');
  const id = job['id'];
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) throw new PayloadError('workflow_job.id: missing or not a positive integer');
  const labels = job['labels'];
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) throw new PayloadError('workflow_job.labels: missing or not an array of strings');
  const runner = job['runner_name'];
  if (runner !== undefined && runner !== null && typeof runner !== 'string') throw new PayloadError('workflow_job.runner_name: not a string');
  const repository = body['repository'];
  const repo = isRecord(repository) && typeof repository['full_name'] === 'string' ? repository['full_name'] : undefined;
  return {
    action: action as WorkflowJobAction,
    jobId: String(id),
    labels: labels.filter((l) => l.length > 0),
    ...(typeof runner === 'string' && runner.length > 0 ? { runnerName: runner } : {}),
    ...(repo !== undefined ? { repo } : {}),
  };
}
