// Lint keeps workflow code deterministic (no Node built-ins, no I/O, no wall clock or
// randomness outside the SDK) and forbids floating promises everywhere.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

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
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must not use Node built-ins (non-deterministic I/O).' })),
          patterns: [
            { group: ['../activities/*', '../drivers/*', '../ssh/*', '../github/*', '../emulator/*', '../workers/*', '../temporal/*', '../cli/*'], allowTypeImports: true, message: 'Workflow code may import only @temporalio/workflow, core/ and *types* of activities.' },
            { group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing', 'execa', 'ssh2', '@octokit/*'], message: 'Not allowed in workflow code.' },
          ],
        },
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
