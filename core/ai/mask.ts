/**
 * Masks contact details before text leaves for an LLM provider. Emails first (their digits
 * must not be read as a phone number); phone numbers are "+" and 7-15 digits, or 9-15 digits,
 * with the usual separators (so dates and short order numbers stay readable).
 */
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
const PHONE = /\+\d(?:[\s().-]{0,2}\d){6,14}\b|\b\d(?:[\s().-]{0,2}\d){8,14}\b/g;

export function maskPii(text: string): string {
  return text.replace(EMAIL, '[email]').replace(PHONE, '[phone]');
}
