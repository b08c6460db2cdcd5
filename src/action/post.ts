// Entry point of the post step (dist/post/index.js): wiring only, all logic is in post-run.ts.
import { run } from './post-run.js';

await run();
