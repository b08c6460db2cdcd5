// The action's post step must run to its end once main has started: in the flow, or else from the
// clean-up. A terminal's Ctrl-C signals the whole process group, so a post step under way at that
// moment is killed along with the demo's other children; it then has not revoked anything for
// sure, and the clean-up runs it again (revoking is idempotent).
import type { RunnerJob, StepResult } from '../../test/support/runner.js';

export class PostStep {
  private main: Promise<unknown> | undefined;
  private running: Promise<StepResult> | undefined;
  private ranToEnd = false;

  constructor(private readonly job: RunnerJob) {}

  /** From now on there may be a grant to revoke. */
  mainStarted(run: Promise<unknown>): void {
    this.main = run;
  }

  /** A run that exited by itself counts as done, whatever its exit code; one killed by a signal does not. */
  run(): Promise<StepResult> {
    this.running = this.job.post().then((result) => {
      if (result.exitCode !== null) this.ranToEnd = true;
      return result;
    });
    return this.running;
  }

  /** For the clean-up: the result of a new run, or undefined when none is needed. */
  async runUnlessDone(): Promise<StepResult | undefined> {
    if (!this.main) return undefined;
    // Post acts on the state main saves when it ends: let an interrupted main finish first.
    await this.main.catch(() => undefined);
    await this.running?.catch(() => undefined);
    if (this.ranToEnd) return undefined;
    return this.run();
  }
}
