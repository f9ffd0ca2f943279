import { linear } from '../platform/linear-regex.js';

/**
 * Masks contact details before text leaves for an LLM provider. Emails first (their digits
 * must not be read as a phone number); phone numbers are "+" and 7-15 digits, or 9-15 digits,
 * with the usual separators (so dates and short order numbers stay readable). On RE2: a long
 * run of digits or address characters costs linear time, not quadratic backtracking.
 */
const EMAIL = linear('[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}', 'g');
const PHONE = linear('\\+\\d(?:[\\s().-]{0,2}\\d){6,14}\\b|\\b\\d(?:[\\s().-]{0,2}\\d){8,14}\\b', 'g');

export function maskPii(text: string): string {
  return PHONE.replace(EMAIL.replace(text, '[email]'), '[phone]');
}
