// The long hardening suites (load, faults, replicas, fuzzing): `npm run test:long`, also run by .ci/run.
// All of them use the control plane.
import { clusterGlobalSetup, common } from './jest.config.js';

export default {
  ...common,
  testMatch: ['**/__tests__/**/*.long.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  globalSetup: clusterGlobalSetup,
  testTimeout: 300_000,
  maxWorkers: 1,
};
