import type { z } from 'zod';
import { ConfigError, loadConfig, type Config } from './config.js';

/** Settings whose values are never echoed back: keys, credentials, URLs that may carry a password. */
const SECRET = /KEY|SECRET|TOKEN|PASSWORD|DATABASE_URL|SOURCES/;

function expectation(issue: z.core.$ZodIssue): string {
  // The schema's own messages already say what is wanted ("must be at least 16 characters").
  if (issue.message.startsWith('must ')) return issue.message;
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'int' ? 'expected a whole number' : `expected a ${issue.expected}`;
    case 'too_small':
      if (issue.origin === 'string') return issue.minimum === 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters`;
      return `must be at least ${issue.minimum}`;
    case 'too_big':
      return issue.origin === 'string' ? `must be at most ${issue.maximum} characters` : `must be at most ${issue.maximum}`;
    case 'invalid_value':
      return `expected one of ${issue.values.join(', ')}`;
    case 'invalid_format':
      return issue.format === 'url' ? 'expected a URL' : `expected the ${issue.format} format`;
    default:
      return issue.message;
  }
}

function shown(name: string, value: string | undefined): string {
  if (value === undefined) return '';
  if (SECRET.test(name)) return ' (value not shown)';
  const text = value.length > 60 ? `${value.slice(0, 57)}…` : value;
  return `, got ${JSON.stringify(text)}`;
}

/** One line per bad setting, e.g. `Invalid setting PORT: expected a number, got "abc"`. */
export function formatConfigError(err: ConfigError): string[] {
  return err.issues.map((issue) => {
    const name = String(issue.path[0] ?? 'environment');
    return `Invalid setting ${name}: ${expectation(issue)}${shown(name, err.received[name])}`;
  });
}

type WithRequired<K extends keyof Config> = Config & { [P in K]-?: NonNullable<Config[P]> };

/**
 * For entry points: the settings, or one line per bad or missing setting on stderr and exit
 * code 1 (no stack trace: the problem is the environment, not the code). `required` names the
 * settings this entry point needs and why.
 */
export function loadConfigOrExit<K extends keyof Config = never>(required: Record<K, string> = {} as Record<K, string>): WithRequired<K> {
  let lines: string[];
  try {
    const config = loadConfig();
    lines = Object.entries<string>(required)
      .filter(([name]) => config[name as K] === undefined)
      .map(([name, why]) => `Missing setting ${name}: required ${why}`);
    if (lines.length === 0) return config as WithRequired<K>;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    lines = formatConfigError(err);
  }
  process.stderr.write(lines.join('\n') + '\n');
  process.exit(1);
}
