// The long hardening suites (load, faults, replicas, fuzzing): `npm run test:long`, also run by .ci/run.
import base from './jest.config.js';

export default {
  ...base,
  testMatch: ['**/__tests__/**/*.long.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 300_000,
  maxWorkers: 1,
};
