// Alert forwarding: tails a JSON-lines file of alerts (Fibratus or Wazuh JSON, one object a line)
// and forwards each as {"alert": …, "seq": n}, at least once across reconnects and restarts.
//
// The persisted position (inode, byte offset, seq) only moves past alerts the gateway acknowledged
// (alert_ack), in file order. Each connection starts reading again from that position, so every
// unacknowledged alert is sent again, with the seq it had before (seqs are assigned in file order
// from the persisted one), which lets the gateway drop the duplicates.
import { open, stat } from "node:fs/promises";
import type { Logger } from "../log.ts";
import type { AlertForward } from "../protocol/messages.ts";
import type { AlertPosition, StateStore } from "./state.ts";

const CHUNK_BYTES = 1 << 20;

interface Sent {
  seq: number | null; // null: a line that is not an alert, skipped but still passed over in order
  end: number;
  seqAfter: number;
  acked: boolean;
}

export interface AlertForwarderOptions {
  file: string;
  state: StateStore;
  /** Returns false when there is no connection to send on. */
  send: (message: AlertForward) => boolean;
  log: Logger;
  pollMs?: number;
  /** Unacknowledged alerts in flight before reading pauses. */
  window?: number;
}

export class AlertForwarder {
  private sent: Sent[] = [];
  private position: AlertPosition = { ino: 0, offset: 0, seq: 0 };
  private readPos = 0;
  private nextSeq = 0;
  private connected = false;
  // Bumped on every (dis)connection: a read started for an older connection stops at once.
  private generation = 0;
  private reading: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: AlertForwarderOptions) {}

  /**
   * Alerts already in the file when the agent first runs are history, not incidents: replaying
   * them would trigger mitigations for long-gone activity. Forwarding starts at the end then.
   */
  async start(): Promise<void> {
    const stored = this.o.state.state.alerts;
    if (stored) this.position = stored;
    else {
      const current = await stat(this.o.file).catch(() => null);
      if (current) await this.commit({ ino: current.ino, offset: current.size, seq: 0 });
    }
    this.timer = setInterval(() => this.poll(), this.o.pollMs ?? 250);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.onDisconnected();
    await this.reading;
  }

  onConnected(): void {
    this.generation++;
    this.connected = true;
    this.sent = [];
    this.readPos = this.position.offset;
    this.nextSeq = this.position.seq;
    this.poll();
  }

  onDisconnected(): void {
    this.generation++;
    this.connected = false;
  }

  async ack(seq: number): Promise<void> {
    const sent = this.sent.find((s) => s.seq === seq);
    if (!sent) return;
    sent.acked = true;
    await this.advance();
  }

  private poll() {
    if (!this.connected || this.reading) return;
    const generation = this.generation;
    this.reading = this.readNew(generation)
      .catch((error: Error) =>
        this.o.log.error("alerts_error", { file: this.o.file, error: error.message }),
      )
      .finally(() => {
        this.reading = null;
      });
  }

  private async readNew(generation: number) {
    const file = await open(this.o.file, "r").catch(() => null);
    if (!file) return; // not written yet
    try {
      // The open file's own inode: a rotation between a stat and an open cannot mix two files.
      const current = await file.stat();
      if (generation !== this.generation) return;
      if (current.ino !== this.position.ino || current.size < this.readPos) {
        // Rotated or truncated: a new file starts at 0; seqs keep counting so they never repeat.
        if (this.position.ino) this.o.log.info("alerts_file_rotated", { file: this.o.file });
        this.sent = [];
        this.readPos = 0;
        await this.commit({ ino: current.ino, offset: 0, seq: this.nextSeq });
        if (generation !== this.generation) return;
      }
      const window = this.o.window ?? 500;
      let chunkBytes = CHUNK_BYTES;
      while (this.readPos < current.size && this.sent.length < window) {
        const length = Math.min(chunkBytes, current.size - this.readPos);
        const buffer = Buffer.alloc(length);
        await file.read(buffer, 0, length, this.readPos);
        if (generation !== this.generation) return;
        let start = 0;
        for (
          let nl = buffer.indexOf(10);
          nl !== -1 && this.sent.length < window;
          nl = buffer.indexOf(10, start)
        ) {
          const line = buffer.subarray(start, nl).toString("utf8").trim();
          start = nl + 1;
          const end = this.readPos + start;
          const alert = parseAlert(line);
          if (alert === null) {
            if (line)
              this.o.log.warn("alert_skipped", { file: this.o.file, reason: "not a JSON object" });
            this.sent.push({ seq: null, end, seqAfter: this.nextSeq, acked: true });
            continue;
          }
          const seq = this.nextSeq;
          if (!this.o.send({ alert, seq })) return; // the next connection re-reads from the position
          this.nextSeq++;
          this.sent.push({ seq, end, seqAfter: this.nextSeq, acked: false });
        }
        if (start === 0) {
          // No complete line in the chunk: a partial last line waits; a longer line needs more bytes.
          if (length < chunkBytes) break;
          chunkBytes *= 2;
          continue;
        }
        this.readPos += start;
      }
    } finally {
      await file.close();
    }
    await this.advance();
  }

  /** Moves the persisted position over the acknowledged (or skipped) prefix of what was sent. */
  private async advance() {
    let last: Sent | undefined;
    while (this.sent[0]?.acked) last = this.sent.shift();
    if (last) await this.commit({ ino: this.position.ino, offset: last.end, seq: last.seqAfter });
  }

  private async commit(position: AlertPosition) {
    this.position = position;
    await this.o.state.update((s) => {
      s.alerts = position;
    });
  }
}

function parseAlert(line: string): Record<string, unknown> | null {
  if (!line) return null;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
