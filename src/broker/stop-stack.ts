// The stops of a starting program's parts, run newest first, once. Each part registers its stop as
// soon as it has started, so a failed start and a shutdown unwind the same stack, and a part added
// later cannot be forgotten on either path. A stop that fails is reported and the rest still run.

export type Stop = () => Promise<unknown> | unknown;

export class StopStack {
  private readonly stops: { name: string; stop: Stop }[] = [];
  private unwinding: Promise<void> | undefined;

  constructor(private readonly onError: (name: string, err: unknown) => void) {}

  /** Registers the stop of a part that has just started. Once unwinding began, it runs at once. */
  push(name: string, stop: Stop): void {
    if (this.unwinding) void this.runOne({ name, stop });
    else this.stops.push({ name, stop });
  }

  /** Runs every stop, newest first, one after another; resolves when all have run. */
  unwind(): Promise<void> {
    this.unwinding ??= (async () => {
      for (let item = this.stops.pop(); item; item = this.stops.pop()) await this.runOne(item);
    })();
    return this.unwinding;
  }

  private async runOne(item: { name: string; stop: Stop }): Promise<void> {
    try {
      await item.stop();
    } catch (err) {
      this.onError(item.name, err);
    }
  }
}

/** `close` called once, whoever asks first (the shutdown's drain or the stack), with its argument. */
export function closeOnce<A>(close: (arg: A) => Promise<void>): (arg: A) => Promise<void> {
  let closing: Promise<void> | undefined;
  return (arg) => (closing ??= close(arg));
}
