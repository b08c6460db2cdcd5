// Clean-up stack: undo actions run newest first, once. After it has started (Ctrl-C mid-step),
// anything registered later is undone at once, so a step that finishes late leaves nothing.

/** An undo action; it returns 'nothing-to-do' when there was nothing left to undo (not reported). */
export type Undo = () => Promise<void | 'nothing-to-do'> | void | 'nothing-to-do';

export class CleanupStack {
  private readonly items: { label: string; undo: Undo }[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly report: (label: string, err?: unknown) => void) {}

  push(label: string, undo: Undo): void {
    if (this.running) {
      void this.runOne({ label, undo });
      return;
    }
    this.items.push({ label, undo });
  }

  runAll(): Promise<void> {
    this.running ??= (async () => {
      while (this.items.length > 0) await this.runOne(this.items.pop()!);
    })();
    return this.running;
  }

  private async runOne(item: { label: string; undo: Undo }): Promise<void> {
    try {
      if ((await item.undo()) !== 'nothing-to-do') this.report(item.label);
    } catch (err) {
      this.report(item.label, err);
    }
  }
}
