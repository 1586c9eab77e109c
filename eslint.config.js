// ESLint flat config: typescript-eslint's recommended rules for the engine, electron and e2e code.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'dist-electron/',
      'dist-renderer/',
      'dist-bundle/',
      'dist-gpu/',
      'release/',
      'normlab-project/',
      'test-results/',
      'playwright-report/',
      'renderer/**/*.svelte',
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-unsafe-function-type': 'off',
    },
  },
  {
    // Synchronous tensor reads throw on the webgpu backend in Node (and stall any GPU): engine
    // code reads with `await t.data()` / `await t.array()`. Tests may read synchronously.
    files: ['engine/**/*.ts'],
    ignores: ['engine/**/*.test.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'CallExpression > MemberExpression.callee[property.name=/^(dataSync|arraySync)$/]',
          message: 'Synchronous tensor reads throw on webgpu: use `await t.data()` or `await t.array()`.',
        },
      ],
    },
  },
);
