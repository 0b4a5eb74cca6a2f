// npm run lint: typescript-eslint with type information, for the rules that matter in a service:
// a promise nobody awaits (a write that fails silently, a request answered before its work is
// done), a promise where a callback's result is ignored (an async Express handler or event
// listener whose rejection nobody sees), and awaiting what is not a promise.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', 'node_modules/**', '.data/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Prettier owns line breaks (and breaks `request(app)[method](path)` chains before the bracket),
      // as eslint-config-prettier does for this rule.
      'no-unexpected-multiline': 'off',
    },
  },
  {
    // Tests read response bodies parsed from the wire (supertest types them `any`) and assert their
    // shape at run time: the no-unsafe-* rules would only ask for casts there. The promise rules stay.
    files: ['tests/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // Tables of samples and credentials share one async signature, whether or not each awaits.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { module: 'readonly', require: 'readonly', process: 'readonly', __dirname: 'readonly', console: 'readonly' },
    },
  },
);
