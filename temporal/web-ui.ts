/**
 * Links into the Temporal Web UI: the workflow list filtered by Ekiden's search attributes
 * (a pool's runners, a host's, a phase, a job) and one workflow run's page. The formats are
 * the UI's own: `/namespaces/{ns}/workflows?query={visibility query}` and
 * `/namespaces/{ns}/workflows/{encoded workflow id}/{run id}/history`.
 */
import { SA_HOST, SA_JOB, SA_PHASE, SA_POOL, type RunnerPhase } from '../core/search-attributes.js';

export interface RunnerFilters {
  pool?: string;
  host?: string;
  phase?: RunnerPhase;
  job?: string;
}

/** A visibility-query string literal: double-quoted, with `\` and `"` backslash-escaped. */
export function queryLiteral(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * The visibility query for runners matching every given filter, e.g.
 * `EkidenPool="linux" AND EkidenPhase="busy"`; empty when no filter is set (undefined and
 * empty values are left out).
 */
export function runnersQuery(filters: RunnerFilters): string {
  const terms: Array<[string, string | undefined]> = [
    [SA_POOL.name, filters.pool],
    [SA_HOST.name, filters.host],
    [SA_PHASE.name, filters.phase],
    [SA_JOB.name, filters.job],
  ];
  return terms
    .filter((t): t is [string, string] => t[1] !== undefined && t[1] !== '')
    .map(([name, value]) => `${name}=${queryLiteral(value)}`)
    .join(' AND ');
}

function namespaceBase(uiUrl: string, namespace: string): string {
  return `${uiUrl.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}`;
}

/** The Web UI's workflow list filtered to the matching runners (all workflows without filters). */
export function webUiRunnersLink(uiUrl: string, namespace: string, filters: RunnerFilters): string {
  const list = `${namespaceBase(uiUrl, namespace)}/workflows`;
  const query = runnersQuery(filters);
  return query ? `${list}?query=${encodeURIComponent(query)}` : list;
}

/** The Web UI's page of one workflow run (its event history). */
export function webUiWorkflowLink(uiUrl: string, namespace: string, workflowId: string, runId: string): string {
  return `${namespaceBase(uiUrl, namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}/history`;
}
