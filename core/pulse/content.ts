import type { PulseMessage } from '../../contracts/pulse.js';

export interface ContentContact {
  name: string | null;
  tags: string[];
  attributes: Record<string, unknown>;
}

export interface PickedContent {
  text: string;
  /** Which template produced it: "default" or "variant:<index>". */
  variant: string;
}

const VARIABLE = /\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}/g;

/** Template variables: `{{name}}`, `{{first_name}}`, and any attribute (`{{city}}`, `{{attributes.city}}`). */
export function templateVariables(contact: ContentContact): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(contact.attributes)) {
    if (v === null || typeof v === 'object') continue;
    vars[k] = String(v);
    vars[`attributes.${k}`] = String(v);
  }
  const name = contact.name?.trim() || 'there';
  vars.name = name;
  vars.first_name = name.split(/\s+/)[0];
  return vars;
}

/** Unknown variables render as empty rather than leaking `{{…}}` into a customer's chat. */
export function renderTemplate(template: string, vars: Record<string, string>): string {
  return template
    .replace(VARIABLE, (_m, key: string) => vars[key] ?? '')
    .replace(/[ \t]{2,}/g, ' ')
    .trim();
}

/**
 * Rule-based personalisation: the first variant sharing a tag with the contact wins,
 * else the campaign's default template; then the contact's variables fill it in.
 */
export function pickContent(message: Pick<PulseMessage, 'template' | 'variants'>, contact: ContentContact): PickedContent {
  const index = (message.variants ?? []).findIndex((v) => v.tags.some((t) => contact.tags.includes(t)));
  const template = index >= 0 ? message.variants![index].template : message.template;
  return { text: renderTemplate(template, templateVariables(contact)), variant: index >= 0 ? `variant:${index}` : 'default' };
}
