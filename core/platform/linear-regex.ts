import RE2 from 're2';

/**
 * Regular expressions on RE2: matching time is linear in the input whatever the pattern, so a
 * tenant's pattern or an adversarial message cannot stall the event loop. RE2 refuses what
 * would need backtracking (backreferences, lookarounds) and oversized repetitions.
 */
export type LinearRegExp = RE2;

/** Compiles a pattern on RE2, or says why RE2 refuses it. */
export function compileLinear(pattern: string, flags = ''): LinearRegExp | { error: string } {
  try {
    return new RE2(pattern, flags);
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** RE2 for Parley's own fixed patterns, which always compile. */
export function linear(pattern: string, flags = ''): LinearRegExp {
  return new RE2(pattern, flags);
}
