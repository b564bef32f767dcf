export { RunnerWorkflow, runnerStatusQuery, jobAssignedSignal } from './runner.js';
export { PoolWorkflow } from './pool.js';
export { HostWorkflow } from './host.js';
