/**
 * Reads a config file as YAML (`.yaml`, `.yml`) or JSON (`.json`), chosen by its extension.
 * Syntax errors become ConfigErrors naming the file, line and column.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError } from './fields.js';
import { errorMessage } from '../core/failures.js';

/** A config file is small; anything larger is not one (and is never read whole). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

type Format = 'json' | 'yaml';

function formatOf(file: string): Format {
  const ext = extname(file).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  throw new ConfigError(`${file}: unknown config format "${ext || '(no extension)'}"; name the file *.yaml, *.yml or *.json`);
}

export function parseConfigText(text: string, file: string): unknown {
  return formatOf(file) === 'json' ? parseJson(text, file) : parseYaml(text, file);
}

/**
 * The text of a small regular file, checked before it is opened: a FIFO would block the read
 * for ever and a device (/dev/zero) never ends, so neither is read; nor is a file over `maxBytes`.
 */
export function readBoundedFile(file: string, what: string, maxBytes: number): string {
  const cannot = (why: string, fix = 'check the path') => new ConfigError(`${file}: cannot read the ${what} (${why}); ${fix}`);
  let st: Stats;
  try {
    st = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw cannot(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'ENOTDIR' ? 'a part of the path is not a directory' : errorMessage(err));
  }
  if (st.isDirectory()) throw cannot('it is a directory', 'give the path of a file');
  if (!st.isFile()) throw cannot(`it is not a regular file but a ${st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : 'device'}`, 'give the path of a file');
  if (st.size > maxBytes) throw cannot(`it is ${st.size} bytes, more than the ${maxBytes} a ${what} may have`, 'give the right file');
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw cannot(code === 'EACCES' ? 'permission denied' : errorMessage(err));
  }
}

export function loadConfigFile(file: string): unknown {
  formatOf(file); // the extension is checked before anything is opened
  return parseConfigText(readBoundedFile(file, 'config file', MAX_CONFIG_BYTES), file);
}

function parseYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const pos = err.linePos?.[0];
    const where = pos ? `line ${pos.line}, column ${pos.col}` : 'somewhere';
    const what = err.message.split(/ at line \d+|\n/)[0];
    throw new ConfigError(`${file}: YAML error at ${where}: ${what}; fix the syntax there`);
  }
  return doc.toJS({ maxAliasCount: 100 });
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = errorMessage(err);
    const position = /at position (\d+)/.exec(message);
    let where = '';
    if (position) {
      const before = text.slice(0, Number(position[1]));
      const line = before.split('\n').length;
      const col = before.length - before.lastIndexOf('\n');
      where = ` at line ${line}, column ${col}`;
    } else {
      const lc = /line (\d+) column (\d+)/.exec(message);
      if (lc) where = ` at line ${lc[1]}, column ${lc[2]}`;
    }
    const what = message.replace(/\s*(in JSON )?at position \d+.*$/, '').replace(/\s*\(line \d+ column \d+\)$/, '');
    throw new ConfigError(`${file}: JSON error${where}: ${what}; fix the syntax there`);
  }
}
