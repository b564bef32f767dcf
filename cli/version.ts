/**
 * `ekiden --version`: the version of the package this CLI was built from, read from the
 * nearest package.json named `ekiden` above this module (the checkout, or the installed
 * package; the same file whether running from source or from dist/).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'ekiden' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json here: keep looking upwards
    }
  }
  return 'unknown';
}
