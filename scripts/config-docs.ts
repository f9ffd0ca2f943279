import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configSchema } from '../core/platform/config.js';

/**
 * `npm run docs:config`: renders docs/configuration.md from the config schema, so the reference
 * cannot drift from what start-up accepts (test/docs.test.ts fails when the file is stale).
 */
export const CONFIG_DOCS_PATH = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

interface Setting {
  name: string;
  type: string;
  default: string;
  description: string | undefined;
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (text: string) => '`' + text + '`';

function typeOf(schema: z.ZodType): string {
  if (schema instanceof z.ZodEnum) return schema.options.map((o) => code(String(o))).join(' \\| ');
  if (schema instanceof z.ZodNumber) {
    const max = schema.maxValue !== null && schema.maxValue < Number.MAX_SAFE_INTEGER ? schema.maxValue : undefined;
    const min = schema.minValue !== null && schema.minValue > Number.MIN_SAFE_INTEGER ? schema.minValue : undefined;
    const kind = schema.isInt ? 'integer' : 'number';
    if (min !== undefined && max !== undefined) return `${kind} ${min}–${max}`;
    if (min !== undefined) return `${kind} ≥ ${min}`;
    return kind;
  }
  if (schema instanceof z.ZodString) return schema.format === 'url' ? 'URL' : 'string';
  return schema.def.type;
}

/** Name, type, default and description of every setting, in the schema's order. */
export function configSettings(schema: z.ZodObject = configSchema): Setting[] {
  return Object.entries(schema.shape).map(([name, field]) => {
    let inner = field as z.ZodType;
    let fallback = 'unset';
    for (;;) {
      if (inner instanceof z.ZodDefault) {
        fallback = code(String(inner.def.defaultValue));
        inner = inner.def.innerType as z.ZodType;
      } else if (inner instanceof z.ZodOptional) {
        inner = inner.def.innerType as z.ZodType;
      } else break;
    }
    return { name, type: typeOf(inner), default: fallback, description: (field as z.ZodType).description };
  });
}

export function renderConfigDocs(schema: z.ZodObject = configSchema): string {
  const rows = configSettings(schema).map((s) => `| ${code(s.name)} | ${s.type} | ${cell(s.default)} | ${cell(s.description ?? '')} |`);
  return [
    '# Configuration reference',
    '',
    '<!-- Generated from core/platform/config.ts by `npm run docs:config`; edit the schema, not this file. -->',
    '',
    'Parley reads its settings from environment variables, checked once at start-up against one schema',
    '(`core/platform/config.ts`): a bad value stops start-up with a message naming the variable. An empty',
    'variable counts as unset. Defaults suit the single-machine setup of `npm start`; a real deployment sets',
    'at least `DATABASE_URL`, `TEMPORAL_ADDRESS`, `ADMIN_API_KEY` and `PARLEY_ENCRYPTION_KEY` (see',
    '[deployment](deployment.md)).',
    '',
    'Per-tenant settings (fallback message, debounce, legacy mode, retention, AI profile, channels) are not',
    'environment variables: they are set through the API, on the page of each capability.',
    '',
    '| Variable | Type | Default | What it does |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(CONFIG_DOCS_PATH, renderConfigDocs());
  process.stdout.write(`wrote ${CONFIG_DOCS_PATH}\n`);
}
