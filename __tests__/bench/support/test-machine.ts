// The machine every report in the bench's unit tests is built for: fixed, so tables and keys compare.
import type { MachineInfo } from '../../../bench/lib/machine.js';

export const TEST_MACHINE: MachineInfo = {
  cpuModel: 'test cpu',
  cores: 2,
  memoryGiB: 4,
  os: 'linux',
  node: 'v20',
  kubectl: 'v1.36',
  loadAverageAtStart: 0.1,
  commit: 'abc1234',
};
