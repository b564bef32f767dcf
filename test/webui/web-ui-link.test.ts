/**
 * Unit tests of the Temporal Web UI links Ekiden prints and opens (temporal/web-ui.ts).
 */
import { describe, expect, it } from 'vitest';
import { queryLiteral, runnersQuery, webUiRunnersLink, webUiWorkflowLink } from '../../temporal/web-ui.js';

const UI = 'http://127.0.0.1:8233';

describe('webUiRunnersLink', () => {
  it('filters a pool with the query the UI reads from ?query=', () => {
    const link = webUiRunnersLink(UI, 'default', { pool: 'demo' });
    expect(link).toBe('http://127.0.0.1:8233/namespaces/default/workflows?query=EkidenPool%3D%22demo%22');
    expect(link).toBe(`${UI}/namespaces/default/workflows?query=${encodeURIComponent('EkidenPool="demo"')}`);
    expect(new URL(link).searchParams.get('query')).toBe('EkidenPool="demo"');
  });

  it('joins every filter with AND in a fixed order', () => {
    const link = webUiRunnersLink(UI, 'default', { job: '42', phase: 'busy', host: 'mac-1', pool: 'linux' });
    expect(new URL(link).pathname).toBe('/namespaces/default/workflows');
    expect(new URL(link).searchParams.get('query')).toBe('EkidenPool="linux" AND EkidenHost="mac-1" AND EkidenPhase="busy" AND EkidenJob="42"');
    expect(link).not.toMatch(/[ "]/);
  });

  it('links to the unfiltered list when no filter is set', () => {
    expect(webUiRunnersLink(UI, 'default', {})).toBe(`${UI}/namespaces/default/workflows`);
    expect(webUiRunnersLink(UI, 'default', { pool: undefined, job: '' })).toBe(`${UI}/namespaces/default/workflows`);
  });

  it('escapes quotes and backslashes inside values', () => {
    expect(queryLiteral('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(runnersQuery({ pool: 'x" OR EkidenPool="y' })).toBe('EkidenPool="x\\" OR EkidenPool=\\"y"');
    const link = webUiRunnersLink(UI, 'default', { pool: 'a"b\\c', host: "it's" });
    expect(new URL(link).searchParams.get('query')).toBe('EkidenPool="a\\"b\\\\c" AND EkidenHost="it\'s"');
  });

  it('accepts a UI URL with a trailing slash and encodes the namespace', () => {
    expect(webUiRunnersLink(`${UI}/`, 'team a/b', { phase: 'idle' })).toBe(
      `${UI}/namespaces/team%20a%2Fb/workflows?query=${encodeURIComponent('EkidenPhase="idle"')}`,
    );
  });
});

describe('webUiWorkflowLink', () => {
  it('encodes the slashes of a runner workflow id into one path segment', () => {
    expect(webUiWorkflowLink(UI, 'default', 'runner/linux/7', '01a2-b3')).toBe(`${UI}/namespaces/default/workflows/runner%2Flinux%2F7/01a2-b3/history`);
  });
});
