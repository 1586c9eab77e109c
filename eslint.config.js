// ESLint flat config: typescript-eslint's recommended rules for the engine, electron and e2e code.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'dist-electron/',
      'dist-renderer/',
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
);
