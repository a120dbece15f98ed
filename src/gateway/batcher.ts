// Many sessions' database writes as one statement. Every audited command change (claim, ack,
// completion) takes the audit chain's lock until it commits (migrations/0004_audit_chain.ts), so
// one statement per command serialises the whole gateway on that lock: 2,000 agents answering at
// once were 6,000 commits in a row. Here one statement runs at a time per kind, and whatever
// arrives meanwhile goes together in the next: no timer, no added latency when idle, and batches
// grow with the load (group commit).
//
// Bounded: each session waits for its own write before it sends the next of that kind (its frames
// are handled in order, its claims one at a time), so a queue holds at most a few entries per
// live session, and one statement takes at most `maxBatch` of them.

export class Batcher<In, Out> {
  private queue: { item: In; resolve: (out: Out) => void; reject: (err: unknown) => void }[] = [];
  private running = false;

  constructor(
    private readonly write: (items: In[]) => Promise<Out[]>,
    private readonly maxBatch: number,
  ) {}

  /** Resolves with this item's answer once the statement that carried it has committed. */
  submit(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const answers = await this.write(batch.map((b) => b.item));
          for (const [i, b] of batch.entries()) b.resolve(answers[i] as Out);
        } catch (err) {
          // Each waiting session answers its agent (session.ts guard); the next batch still runs.
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
