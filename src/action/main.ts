// Entry point of the main step (dist/main/index.js): wiring only, all logic is in main-run.ts.
import { run } from './main-run.js';

await run();
