/**
 * Reads a config file as YAML (`.yaml`, `.yml`) or JSON (`.json`), chosen by its extension.
 * Syntax errors become ConfigErrors naming the file, line and column.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError } from './fields.js';
import { errorMessage } from '../core/failures.js';

export function parseConfigText(text: string, file: string): unknown {
  const ext = extname(file).toLowerCase();
  if (ext === '.json') return parseJson(text, file);
  if (ext === '.yaml' || ext === '.yml') return parseYaml(text, file);
  throw new ConfigError(`${file}: unknown config format "${ext || '(no extension)'}"; name the file *.yaml, *.yml or *.json`);
}

export function loadConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : errorMessage(err);
    throw new ConfigError(`${file}: cannot read the config file (${why}); check the path`);
  }
  return parseConfigText(text, file);
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
