// How many commands one gateway has sent and not yet seen completed, across all its sessions.
// Without a bound, a burst (20,000 commands noticed at once) is claimed and written to the sockets
// all at once: every frame, every ack and completion waiting to be recorded is in memory together,
// and an ack waits behind thousands of others, seconds after its agent sent it. With it, the rest
// of a burst waits where it is durable anyway (PostgreSQL, status pending) and its ids in the
// sessions' notice sets; what is in flight is what the database records within a few statements,
// so memory is bounded by the window and the ack round trip stays short (Little's law: round trip
// = commands in flight / commands per second).

export class DeliveryWindow {
  private used = 0;
  /** Sessions waiting for room: at most a couple per live session (their claims are serial). */
  private waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  get inFlight(): number {
    return this.used;
  }

  get hasRoom(): boolean {
    return this.used < this.limit;
  }

  /** Waits for room, then reserves between one and `want` slots; answers how many. */
  async reserve(want: number): Promise<number> {
    while (this.used >= this.limit) await new Promise<void>((wake) => this.waiting.push(wake));
    const n = Math.max(1, Math.min(want, this.limit - this.used));
    this.used += n;
    return n;
  }

  /** Adds slots beyond a reservation: a backlog claim may bring more than it reserved. */
  take(n: number): void {
    this.used += n;
  }

  /** Gives slots back (completed, unused, or their session ended) and wakes as many waiters. */
  release(n: number): void {
    this.used = Math.max(0, this.used - n);
    for (let room = this.limit - this.used; room > 0 && this.waiting.length; room--)
      this.waiting.shift()?.();
  }
}
