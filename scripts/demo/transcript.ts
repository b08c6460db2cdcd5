// The demo's transcript: numbered step headings with timings, indented detail lines, ✔ result
// markers and ✘ failures.

type Write = (text: string) => void;

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

// Duck-typed: errors from another realm (a jest VM context) are not `instanceof Error` here.
export const errorText = (err: unknown): string =>
  typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : String(err);

export class Transcript {
  private readonly started = Date.now();
  private current: string | undefined;

  constructor(private readonly write: Write = (t) => void process.stdout.write(t)) {}

  line(text = ''): void {
    for (const l of text.split('\n')) this.write(`      ${l}\n`.replace(/^\s+\n$/, '\n'));
  }

  result(marker: string, detail: string): void {
    this.write(`   ✔ ${marker}: ${detail}\n`);
  }

  heading(text: string): void {
    this.write(`\n${text}\n`);
  }

  elapsed(): string {
    return seconds(Date.now() - this.started);
  }

  /** `[ n/total] title`, the number right-aligned to the width of the total. */
  stepStarted(n: number, total: number, title: string): void {
    this.current = `step ${n}/${total}`;
    this.write(`\n[${String(n).padStart(String(total).length)}/${total}] ${title}\n`);
  }

  stepEnded(tookMs: number): void {
    this.current = undefined;
    this.write(`      (${seconds(tookMs)}, ${this.elapsed()} since start)\n`);
  }

  stepFailed(tookMs: number, err: unknown): void {
    this.current = undefined;
    this.write(`   ✘ failed after ${seconds(tookMs)}: ${errorText(err)}\n`);
  }

  /** The step under way ("step 8/12"), or undefined between steps. */
  currentStep(): string | undefined {
    return this.current;
  }
}
