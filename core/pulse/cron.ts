/**
 * Checks a cron expression before it reaches Temporal, so a mistake is reported as a 400
 * naming `body.cron` with what is wrong, not as a Temporal error. Accepts what Temporal's
 * schedule spec accepts for the common case: five fields (minute hour day-of-month month
 * day-of-week) with lists, ranges, steps and month/day names, or a @-shorthand.
 */
const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;

const SHORTHANDS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

function parseValue(token: string, field: (typeof FIELDS)[number]): number | undefined {
  if (/^\d+$/.test(token)) return Number(token);
  const names: readonly string[] | undefined = 'names' in field ? field.names : undefined;
  const index = names?.indexOf(token.toLowerCase()) ?? -1;
  if (index < 0) return undefined;
  return field.name === 'month' ? index + 1 : index;
}

function checkPart(part: string, field: (typeof FIELDS)[number]): string | null {
  const [range, step, extra] = part.split('/');
  if (extra !== undefined || range === '') return `"${part}" in the ${field.name} field is not valid`;
  if (step !== undefined && !(/^\d+$/.test(step) && Number(step) > 0))
    return `step "${step}" in the ${field.name} field must be a positive number`;
  if (range === '*') return null;
  const bounds = range.split('-');
  if (bounds.length > 2) return `"${range}" in the ${field.name} field is not a range`;
  const values = bounds.map((b) => parseValue(b, field));
  for (const [i, v] of values.entries()) {
    if (v === undefined) return `"${bounds[i]}" is not a valid ${field.name}`;
    if (v < field.min || v > field.max) return `${field.name} ${v} is outside ${field.min}-${field.max}`;
  }
  if (values.length === 2 && values[0]! > values[1]!) return `range "${range}" in the ${field.name} field runs backwards`;
  return null;
}

/** Returns why the expression is invalid, or null when it is fine. */
export function cronProblem(expression: string): string | null {
  const expr = expression.trim();
  if (expr.startsWith('@')) return SHORTHANDS.has(expr.toLowerCase()) ? null : `unknown shorthand "${expr}"`;
  const fields = expr.split(/\s+/);
  if (fields.length !== 5) return `must have 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`;
  for (const [i, text] of fields.entries()) {
    for (const part of text.split(',')) {
      const problem = checkPart(part, FIELDS[i]);
      if (problem) return problem;
    }
  }
  return null;
}

/** True when the runtime's ICU knows the IANA zone (e.g. "Africa/Johannesburg"). */
export function isKnownTimeZone(zone: string): boolean {
  if (!zone.includes('/') && zone !== 'UTC') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
