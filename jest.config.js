/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // One PostgreSQL for the whole run (TEST_DATABASE_URL, or an embedded one), migrated once.
  globalSetup: '<rootDir>/tests/global-setup.ts',
  globalTeardown: '<rootDir>/tests/global-teardown.ts',
  testTimeout: 30000,
  // Test files share one database, and a few act on all of it (the usage forwarder claims any due
  // event, reconciliation walks every linked customer): run the files one after another.
  maxWorkers: 1,
};
