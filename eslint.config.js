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
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, activities as types only.
    files: ['workflows/**/*.ts', 'test/fixtures/broken-workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: NODE_BUILTINS, message: 'workflows run in the deterministic sandbox: no Node built-ins' },
            {
              group: ['**/activities/*', '!**/activities/index.js'],
              message: 'import activities as types only, through activities/index.js',
              allowTypeImports: true,
            },
            {
              group: ['**/core/db/*', '**/core/providers/*', 'pg', 'drizzle-orm', 'drizzle-orm/*'],
              message: 'workflows do no I/O: call an activity',
            },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
);
