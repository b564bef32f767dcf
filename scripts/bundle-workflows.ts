/**
 * Prebuilds the workflow bundle so workers start fast and a stray non-deterministic import
 * fails the build, not a running worker.
 */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const workflowsPath = fileURLToPath(new URL('../workflows/index.js', import.meta.url));
const out = fileURLToPath(new URL('../workflow-bundle.js', import.meta.url));
const { code } = await bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('WARN') });
await writeFile(out, code);
console.log(`workflow bundle: ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
