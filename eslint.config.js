// Lint keeps workflow code deterministic (no Node built-ins, no I/O, no wall clock or
// randomness outside the SDK) and forbids floating promises everywhere.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
const builtinPaths = nodeBuiltins.map((name) => ({ name, message: 'Workflow code must not use Node built-ins (non-deterministic I/O).' }));
// What code running in Temporal's workflow sandbox may not import.
const sandboxPatterns = [
  { group: ['../activities/*', '../drivers/*', '../ssh/*', '../github/*', '../emulator/*', '../workers/*', '../temporal/*', '../cli/*'], allowTypeImports: true, message: 'Workflow code may import only @temporalio/workflow, core/ and *types* of activities.' },
  { group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing', 'execa', 'ssh2', '@octokit/*'], message: 'Not allowed in workflow code.' },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bin/**', 'eslint.config.js', 'vitest.config.ts', '.ekiden/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    // Workflow code and the pure modules it imports run in Temporal's deterministic sandbox.
    files: ['workflows/**/*.ts', 'core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: builtinPaths,
          patterns: [
            ...sandboxPatterns,
          ],
        },
      ],
      // Locale- and environment-dependent calls answer differently on a macOS and a Linux worker.
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.property.name=/^(localeCompare|toLocaleString|toLocaleDateString|toLocaleTimeString|toLocaleUpperCase|toLocaleLowerCase)$/]", message: 'Locale-dependent: compare with < / > (core/pool-policy.ts compareText), format without the locale.' },
        { selector: "MemberExpression[object.name='Intl']", message: 'Intl depends on the worker\'s locale and time zone.' },
        { selector: "CallExpression[callee.property.name='getTimezoneOffset']", message: 'Depends on the worker\'s time zone.' },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'No process access in workflow code.' },
        { name: 'setInterval', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'fetch', message: 'No I/O in workflow code; call an activity.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Use the SDK-provided deterministic random (workflow.uuid4) in workflows.' },
      ],
    },
  },
  {
    // Defaults are resolved where a workflow is started (core/defaults.ts), never inside one.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: builtinPaths,
          patterns: [
            { group: ['../core/defaults.js', '../core/defaults'], message: 'Workflow code never reads a default table: resolve defaults where the workflow is started and carry them in its input.' },
            ...sandboxPatterns,
          ],
        },
      ],
    },
  },
  {
    // Pure shared modules take time as a parameter instead of reading a clock.
    files: ['core/**/*.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'core/ must take time as a parameter.' },
        { object: 'Math', property: 'random', message: 'core/ must be deterministic.' },
      ],
    },
  },
);
