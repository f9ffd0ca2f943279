import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../core/platform/config.js';
import { formatConfigError } from '../core/platform/config-errors.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return formatConfigError(err);
  }
  assert.fail('the settings were accepted');
}

describe('bad settings', () => {
  it('names each bad setting, what it expects and what it got, in one line each', () => {
    assert.deepEqual(
      problems({ PORT: 'abc', TEMPORAL_PORT: '1.5', EMBEDDED_PG_PORT: '99999', RETENTION_PURGE_EVERY: 'x', META_GRAPH_URL: 'bad' }),
      [
        'Invalid setting PORT: expected a number, got "abc"',
        'Invalid setting TEMPORAL_PORT: expected a whole number, got "1.5"',
        'Invalid setting EMBEDDED_PG_PORT: must be at most 65535, got "99999"',
        'Invalid setting RETENTION_PURGE_EVERY: must be a duration like 30m, 1h or 1d, got "x"',
        'Invalid setting META_GRAPH_URL: expected a URL, got "bad"',
      ],
    );
  });

  it('never echoes a key or a database URL', () => {
    const lines = problems({ ADMIN_API_KEY: 'short-secret', DATABASE_URL: 'postgres with password hunter2' });
    assert.deepEqual(lines, [
      'Invalid setting ADMIN_API_KEY: must be at least 16 characters (value not shown)',
      'Invalid setting DATABASE_URL: must be a postgres:// URL (value not shown)',
    ]);
  });
});
