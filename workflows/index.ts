export { RunnerWorkflow } from './runner.js';
export { PoolWorkflow } from './pool.js';
export { HostWorkflow } from './host.js';
