/**
 * The flags of `ekiden webhook`, apart from the receiver so the CLI can answer `--help` without
 * loading it: webhooks/command.ts parses them, cli/main.ts prints them.
 */
export const WEBHOOK_OPTIONS = {
  config: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'secret-env': { type: 'string' },
  temporal: { type: 'string' },
  namespace: { type: 'string' },
} as const;
