/**
 * Masks contact details before text leaves for an LLM provider. Emails first (their digits
 * must not be read as a phone number); phone numbers are runs of 8-15 digits with the usual
 * separators, optionally with a leading "+".
 */
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
const PHONE = /(?:\+|\b00)?\d(?:[\s().-]{0,2}\d){7,14}\b/g;

export function maskPii(text: string): string {
  return text.replace(EMAIL, '[email]').replace(PHONE, '[phone]');
}
