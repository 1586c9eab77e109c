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
      '.scratch/',
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
    // Random tensors come from engine/nn/random.ts (tests may call tfjs's samplers with seeds ≠ 0).
    files: ['engine/**/*.ts'],
    ignores: ['engine/**/*.test.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'CallExpression > MemberExpression.callee[property.name=/^(dataSync|arraySync)$/]',
          message: 'Synchronous tensor reads throw on webgpu: use `await t.data()` or `await t.array()`.',
        },
        {
          // tfjs draws from Math.random() when the seed is 0 (falsy); engine/nn/random.ts maps it.
          selector:
            "CallExpression > MemberExpression.callee[object.name='tf'][property.name=/^(randomNormal|randomUniform|randomUniformInt|randomStandardNormal|randomGamma|truncatedNormal|multinomial)$/]",
          message: 'tfjs ignores seed 0 (draws from Math.random): use seededNormal / seededUniform from engine/nn/random.ts.',
        },
      ],
    },
  },
);
