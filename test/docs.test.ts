import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_DOCS_PATH, configSettings, renderConfigDocs } from '../scripts/config-docs.js';

const root = fileURLToPath(new URL('..', import.meta.url));

async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(path.join(root, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f));
  return ['README.md', ...docs.sort()];
}

/** Targets of the Markdown links of a file, code blocks and inline code left out (they hold examples, not links). */
function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
  const targets = [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]);
  return targets.filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith('#'));
}

/** GitHub's anchors for the headings of a Markdown file. */
function headingAnchors(markdown: string): Set<string> {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, '');
  return new Set(
    [...prose.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
      m[1]
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    ),
  );
}

/** The ```bash blocks of a Markdown file, without their comments (which show answers, not commands). */
function bashCode(markdown: string): string {
  return [...markdown.matchAll(/^```bash\n([\s\S]*?)^```$/gm)]
    .map((m) => m[1])
    .join('\n')
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .map((line) => line.replace(/\s#\s.*$/, ''))
    .join('\n');
}

/** What a pasted example would trip over: elided values, <placeholders>, variables it never sets. */
function pasteProblems(markdown: string): string[] {
  const code = bashCode(markdown);
  const problems: string[] = [];
  for (const m of code.matchAll(/\.\.\.|…|(?<![?\w])<[a-z][a-z _-]*>/gi)) problems.push(`placeholder ${m[0]}`);
  const defined = new Set(['HOME', 'PATH', 'PWD']);
  for (const m of code.matchAll(/(?:^|[\s;(])(?:export\s+)?([A-Z_][A-Z0-9_]*)=|\bfor\s+([A-Z_][A-Z0-9_]*)\s+in\b/gm))
    defined.add(m[1] ?? m[2]);
  for (const m of code.matchAll(/\$\{?([A-Z_][A-Z0-9_]*)/g)) if (!defined.has(m[1])) problems.push(`$${m[1]} is never set`);
  return [...new Set(problems)];
}

describe('documentation', () => {
  it('docs/configuration.md is what the config schema renders', async () => {
    const onDisk = await readFile(CONFIG_DOCS_PATH, 'utf8').catch(() => '');
    assert.ok(onDisk === renderConfigDocs(), 'docs/configuration.md is stale: run npm run docs:config');
  });

  it('every setting of the config schema is described', () => {
    const bare = configSettings()
      .filter((s) => !s.description?.trim())
      .map((s) => s.name);
    assert.deepEqual(bare, [], `give these fields a .describe() in core/platform/config.ts, then run npm run docs:config`);
  });

  it('README.md stays short: at most 200 lines', async () => {
    const lines = (await readFile(path.join(root, 'README.md'), 'utf8')).trimEnd().split('\n').length;
    assert.ok(lines <= 200, `README.md has ${lines} lines; move details to docs/`);
  });

  it('every relative link in README.md and docs/*.md points to a file (and heading) that exists', async () => {
    const broken: string[] = [];
    for (const file of await markdownFiles()) {
      const text = await readFile(path.join(root, file), 'utf8');
      for (const link of relativeLinks(text)) {
        const [target, anchor] = link.split('#');
        const absolute = target ? path.resolve(path.dirname(path.join(root, file)), decodeURIComponent(target)) : path.join(root, file);
        if (!existsSync(absolute)) broken.push(`${file}: ${link}`);
        else if (anchor && absolute.endsWith('.md') && !headingAnchors(await readFile(absolute, 'utf8')).has(anchor))
          broken.push(`${file}: ${link}`);
      }
    }
    assert.deepEqual(broken, [], 'broken links');
  });

  it('every shell example runs as pasted: no placeholders, no variable it does not set', async () => {
    const problems: string[] = [];
    for (const file of await markdownFiles()) {
      for (const problem of pasteProblems(await readFile(path.join(root, file), 'utf8'))) problems.push(`${file}: ${problem}`);
    }
    assert.deepEqual(problems, []);
  });

  it('the example check sees placeholders and unset variables, and skips comments and regex groups', () => {
    const block = (code: string) => '```bash\n' + code + '\n```\n';
    assert.deepEqual(pasteProblems(block('curl $PARLEY/x/<conversation_id> -H "$OPS"  # → {"id":"…"}')), [
      'placeholder <conversation_id>',
      '$PARLEY is never set',
      '$OPS is never set',
    ]);
    assert.deepEqual(pasteProblems(block('export A=1\nB=$(echo x)\nfor C in 1; do echo "$A $B $C (?<order_id>x)"; done')), []);
  });

  it('the link check sees links and skips code', () => {
    assert.ok(headingAnchors("## 5. The tenant's own data worker\n```\n# not a heading\n```\n").has('5-the-tenants-own-data-worker'));
    assert.deepEqual(relativeLinks('See [a](docs/a.md#x), [b](https://x.y) and [c](#top).\n```\n[d](nope.md)\n```\n`[e](no.md)`'), [
      'docs/a.md#x',
    ]);
  });
});
