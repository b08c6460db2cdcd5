// Jest runs in ESM mode (NODE_OPTIONS=--experimental-vm-modules, set by the npm scripts).
// Tests that need Kubernetes share one real control plane, started or reused by the global setup.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' } },
    ],
  },
  testMatch: ['**/__tests__/**/*.test.ts'],
  // Long suites (load, faults, fuzzing) run with `npm run test:long` (jest.long.config.js).
  testPathIgnorePatterns: ['/node_modules/', '\\.long\\.test\\.ts$'],
  // The control plane's state (etcd's *.snap files) lives under .cache/; it is not jest's.
  modulePathIgnorePatterns: ['<rootDir>/.cache/'],
  globalSetup: './test/support/global-setup.mjs',
  testTimeout: 60_000,
  maxWorkers: 2,
};
