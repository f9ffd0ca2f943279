import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The import graph of the application code (everything but tests, benchmarks and scripts),
 * `import type` and re-exports included: there are no circles and nothing imports upward.
 * contracts/ is the bottom; core/ sits on it; activities/, workflows/ and api/ on core (and
 * workflows on contracts alone); worker/ puts them together.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
/** Top-level folders outside the application code (and every hidden one). */
const SKIPPED = new Set(['node_modules', 'test', 'bench', 'scripts', 'data', 'examples']);

/** What each top-level folder may import of ours. */
const ALLOWED: Record<string, string[]> = {
  contracts: ['contracts'],
  core: ['core', 'contracts'],
  activities: ['activities', 'core', 'contracts'],
  workflows: ['workflows', 'contracts'],
  api: ['api', 'core', 'contracts'],
  worker: ['worker', 'activities', 'workflows', 'core', 'contracts'],
};

/** Packages contracts/ may use: definitions and types only, nothing with I/O. */
const CONTRACT_PACKAGES = ['@temporalio/workflow', '@temporalio/common', 'zod'];

/** The .ts files under `dir`; at the top level, only the application's folders. */
async function sourceFiles(dir = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(root, dir), { withFileTypes: true })) {
    const rel = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (dir || !(SKIPPED.has(entry.name) || entry.name.startsWith('.'))) out.push(...(await sourceFiles(rel)));
    } else if (/\.[cm]?ts$/.test(entry.name) && dir) {
      out.push(rel);
    }
  }
  return out;
}

interface Graph {
  files: string[];
  /** file → files of ours it imports (relative to the root). */
  edges: Map<string, string[]>;
  /** file → package specifiers it imports. */
  packages: Map<string, string[]>;
}

/** A relative specifier as the file it names: `./x.js` is `./x.ts` in the source tree. */
function resolve(from: string, specifier: string): string {
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  const asTs = target.replace(/\.(c|m)?js$/, '.$1ts');
  return existsSync(path.join(root, asTs)) ? asTs : target;
}

async function importGraph(): Promise<Graph> {
  const files = (await sourceFiles()).sort();
  const edges = new Map<string, string[]>();
  const packages = new Map<string, string[]>();
  for (const file of files) {
    // The compiler's own pre-processor: static, type-only, re-exports, import() and import types, not comments or strings.
    const specifiers = ts.preProcessFile(await readFile(path.join(root, file), 'utf8'), true, true).importedFiles.map((f) => f.fileName);
    edges.set(file, [...new Set(specifiers.filter((s) => s.startsWith('.')).map((s) => resolve(file, s)))]);
    packages.set(file, [...new Set(specifiers.filter((s) => !s.startsWith('.')))]);
  }
  return { files, edges, packages };
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.edges.get(v) ?? []) {
      if (!graph.edges.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.edges.get(v)!.includes(v)) found.push(component.sort());
    }
  };
  for (const file of graph.files) if (!index.has(file)) visit(file);
  return found;
}

const layer = (file: string) => file.split('/')[0];

/** Every edge that breaks the layering, as `from -> to (why)`. */
function upwardImports(graph: Graph): string[] {
  const bad: string[] = [];
  for (const [from, targets] of graph.edges) {
    const allowed = ALLOWED[layer(from)];
    for (const to of targets) {
      const edge = `${from} -> ${to}`;
      if (!allowed) bad.push(`${edge} (${layer(from)}/ has no layer: add it to ALLOWED)`);
      else if (!allowed.includes(layer(to))) bad.push(`${edge} (${layer(from)}/ may import only ${allowed.join(', ')})`);
      else if (layer(from) === 'activities' && layer(to) === 'activities' && from !== 'activities/index.ts')
        bad.push(`${edge} (an activity file uses core/, not another activity file's helpers)`);
    }
  }
  return bad;
}

describe('architecture', () => {
  it('has no import circles', async () => {
    const found = cycles(await importGraph());
    assert.deepEqual(found, [], `import circles:\n${found.map((c) => `  ${c.join(' <-> ')}`).join('\n')}`);
  });

  it('imports only downward: contracts, core, then activities / api (workflows on contracts only), then worker', async () => {
    const bad = upwardImports(await importGraph());
    assert.deepEqual(bad, [], `imports against the layering:\n${bad.map((e) => `  ${e}`).join('\n')}`);
  });

  it('contracts/ use no package but Temporal definitions and zod', async () => {
    const { packages } = await importGraph();
    const bad = [...packages]
      .filter(([file]) => layer(file) === 'contracts')
      .flatMap(([file, specs]) => specs.filter((s) => !CONTRACT_PACKAGES.includes(s)).map((s) => `${file} -> ${s}`));
    assert.deepEqual(bad, [], `contracts/ import packages beyond ${CONTRACT_PACKAGES.join(', ')}:\n${bad.join('\n')}`);
  });

  it('workflows started by name are registered under that name', async () => {
    const index = await readFile(path.join(root, 'workflows/index.ts'), 'utf8');
    const registered = new Set([...index.matchAll(/export \{([^}]+)\} from/g)].flatMap((m) => m[1].split(',').map((n) => n.trim())));
    const started: string[] = [];
    for (const dir of ['api', 'core', 'worker', 'bench', 'scripts']) {
      for (const file of await sourceFiles(dir)) {
        const text = await readFile(path.join(root, file), 'utf8');
        // client.workflow.start / execute / signalWithStart by name, and the workflowType of a Schedule's action.
        const calls = /\b(?:start|execute|signalWithStart)(?:<[^()]*>)?\(\s*'([^']+)'|\bworkflowType:\s*'([^']+)'/g;
        for (const m of text.matchAll(calls)) started.push(`${file}: ${m[1] ?? m[2]}`);
      }
    }
    assert.ok(started.length >= 5, `found the starters: ${started.join(', ')}`);
    const unknown = started.filter((s) => !registered.has(s.split(': ')[1]));
    assert.deepEqual(unknown, [], `started by a name workflows/index.ts does not export:\n${unknown.join('\n')}`);
  });
});
