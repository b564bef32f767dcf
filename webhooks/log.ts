/**
 * The webhook receiver's logger: one JSON object per line. Callers pass short fields only
 * (delivery id, event, job id, pool), never the secret or a payload.
 */
export type LogFields = Record<string, string | number | boolean | undefined | string[]>;

export interface WebhookLogger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export function jsonLineLogger(write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): WebhookLogger {
  const at = (level: string) => (msg: string, fields: LogFields = {}) => write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
  return { info: at('INFO'), warn: at('WARN'), error: at('ERROR') };
}

export const silentLogger: WebhookLogger = { info: () => {}, warn: () => {}, error: () => {} };
