import tseslint from 'typescript-eslint';

const NODE_BUILTINS = [
  'node:*',
  'fs',
  'fs/*',
  'path',
  'os',
  'crypto',
  'child_process',
  'net',
  'http',
  'https',
  'stream',
  'util',
  'timers',
  'timers/*',
  'worker_threads',
];

/** No Node built-ins and no I/O in code that runs in the workflow sandbox (workflows/ and the contracts they import). */
const SANDBOX_PATTERNS = [
  { group: NODE_BUILTINS, message: 'workflows run in the deterministic sandbox: no Node built-ins' },
  {
    group: ['**/activities/**'],
    message: 'workflows never import activities/, not even as types: proxy the Activities interface of contracts/activities.js',
  },
  {
    group: ['**/core/**', 'pg', 'drizzle-orm', 'drizzle-orm/*'],
    message: 'workflows do no I/O and import only workflows/ and contracts/: call an activity',
  },
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', '.tools/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox, and contracts/ are bundled into it.
    files: ['workflows/**/*.ts', 'test/fixtures/broken-workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: SANDBOX_PATTERNS }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The bottom layer: what crosses Temporal, importing nothing of ours.
    files: ['contracts/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...SANDBOX_PATTERNS,
            {
              group: ['**/workflows/**', '**/api/**', '**/worker/**', '**/scripts/**'],
              message: 'contracts import nothing of ours: only other contracts',
            },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
);
