/**
 * Runs bench:images' rollout and rebuild phases (bench/images/rollout.ts, rebuild.ts) one
 * after the other and prints their figures as one line of JSON, last. Options:
 * `--skip-rollout`, `--skip-rebuild`.
 */
import { measureRebuild } from './rebuild.js';
import { measureRollout } from './rollout.js';

async function main(): Promise<void> {
  const out: Record<string, unknown> = {};
  if (!process.argv.includes('--skip-rollout')) out.rollout = await measureRollout();
  if (!process.argv.includes('--skip-rebuild')) out.rebuild = await measureRebuild();
  console.log(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
