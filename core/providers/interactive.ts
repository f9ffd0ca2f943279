import type { Interactive, OutboundInteractive, Provider, SendResult } from './types.js';

/** The text form of buttons or a list, for providers (and customers) without interactive messages. */
export function numberedText(interactive: Interactive): string {
  const options =
    interactive.kind === 'buttons'
      ? interactive.buttons.map((b) => b.title)
      : interactive.sections.flatMap((s) => s.rows.map((r) => (r.description ? `${r.title} — ${r.description}` : r.title)));
  return [interactive.body, '', ...options.map((o, i) => `${i + 1}. ${o}`), '', 'Reply with the number of your choice.'].join('\n');
}

/** The option id a numbered-text answer ("2", " 2.") picks, if it picks one. */
export function optionForNumber(interactive: Interactive, answer: string): string | undefined {
  const m = /^\s*(\d{1,2})\s*[.)]?\s*$/.exec(answer);
  if (!m) return undefined;
  const ids =
    interactive.kind === 'buttons' ? interactive.buttons.map((b) => b.id) : interactive.sections.flatMap((s) => s.rows.map((r) => r.id));
  return ids[Number(m[1]) - 1];
}

/** Sends buttons or a list natively where the provider supports them, as numbered text otherwise. */
export function sendInteractive(provider: Provider, message: OutboundInteractive): Promise<SendResult> {
  if (provider.sendInteractive) return provider.sendInteractive(message);
  const { interactive, ...rest } = message;
  return provider.sendText({ ...rest, text: numberedText(interactive) });
}
