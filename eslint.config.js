// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', '.dxflow/**', 'web/dist/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', AbortController: 'readonly', fetch: 'readonly', performance: 'readonly', structuredClone: 'readonly', FormData: 'readonly', Blob: 'readonly', Response: 'readonly' } },
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // Dependencies point inward (DESIGN.md §2): only composition roots reach adapters.
    files: ['src/core/**', 'src/imaging/**', 'src/models/**', 'src/clinical/**', 'src/llm/**', 'src/fhir/**', 'src/pipeline/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/adapters/**'], message: 'Only composition roots (api, worker, cli) import adapters; receive a port instead.' },
        { group: ['**/api/**', '**/cli/**', '**/worker/**'], message: 'Dependencies point inward (DESIGN.md §2).' },
      ] }],
    },
  },
  {
    files: ['src/core/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['node:fs*', 'node:net', 'node:http*', 'node:child_process', 'fs', 'pg', '@electric-sql/*', 'sharp', 'onnxruntime-node'], message: 'core is pure: no I/O.' },
        { group: ['../*'], message: 'core depends on nothing else in src.' },
      ] }],
    },
  },
);
