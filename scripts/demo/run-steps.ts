// Walks the demo's steps in order: numbers them (the total is the length of the list), times them,
// and stops at the first failure, or at the next step boundary after a Ctrl-C.
import { errorText, type Transcript } from './transcript.js';

export interface DemoStep<C> {
  /** A function when the title names something known only once the demo runs. */
  title: string | ((ctx: C) => string);
  run: (ctx: C) => Promise<void>;
}

/** A step failure that the transcript has already shown. */
export class ReportedError extends Error {
  constructor(readonly original: unknown) {
    super(errorText(original));
  }
}

export async function runSteps<C>(
  steps: readonly DemoStep<C>[],
  ctx: C,
  transcript: Transcript,
  interrupted: () => boolean,
): Promise<void> {
  for (const [i, step] of steps.entries()) {
    if (interrupted()) throw new ReportedError(new Error('interrupted'));
    transcript.stepStarted(
      i + 1,
      steps.length,
      typeof step.title === 'string' ? step.title : step.title(ctx),
    );
    const t0 = Date.now();
    try {
      await step.run(ctx);
    } catch (err) {
      transcript.stepFailed(Date.now() - t0, err);
      throw new ReportedError(err);
    }
    transcript.stepEnded(Date.now() - t0);
  }
}
