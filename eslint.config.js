// Lint: typescript-eslint strictTypeChecked (../STYLE §8). Pure logic files may not import I/O libraries, so they stay
// replayable and testable without services.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // processors/dashboards/public/ is browser script served as is (no build step), outside the TypeScript project.
  {
    ignores: [
      'node_modules/',
      '.stack/',
      '.venv/',
      'out/',
      'dist/',
      'models/',
      'training/',
      'schemas/generated/',
      'processors/dashboards/public/',
    ],
  },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js', 'test/ensure-deps.mjs'] } },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
  {
    // Tests state what they expect to exist; a non-null assertion that fails is a failing test, which is the point.
    files: ['test/**/*.ts', '**/*.test.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  {
    // Production code never imports from test/: the demo, the tools and the local-stack launcher live in processors/tools.
    files: ['processors/**/*.ts', 'topics/**/*.ts', 'schemas/**/*.ts', 'clickhouse/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/test/**'], message: 'production code never imports from test/' }] },
      ],
    },
  },
  {
    files: ['processors/*/logic.ts', 'processors/*/*-logic.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'logic is pure: no I/O' },
            { group: ['**/test/**'], message: 'production code never imports from test/' },
            {
              group: ['kafkajs', 'ioredis', '@clickhouse/client', 'onnxruntime-node'],
              message: 'logic is pure: no I/O',
            },
          ],
        },
      ],
    },
  },
);
