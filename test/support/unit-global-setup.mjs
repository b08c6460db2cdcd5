// Jest global setup of the unit project: its real parts (helm, for the chart tests) before any test.
import { ensurePrerequisites } from './prerequisites.mjs';

export default async function unitGlobalSetup() {
  ensurePrerequisites();
}
