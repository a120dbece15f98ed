// RFC 5424 syslog over TCP (or TLS), framed by octet counting (RFC 6587 §3.4.1), one JSON event
// per message. TCP syslog has no application acknowledgment: an event counts as sent once the
// socket accepted it, so at-least-once holds up to what the kernel buffered when a peer dies.
import net from "node:net";
import os from "node:os";
import tls from "node:tls";
import type { OutboxEvent, SendResult } from "../store/outbox.ts";
import { eventDocument, type SiemSink, withTimeout } from "./sink.ts";

/** facility 13 (log audit) × 8 + severity 5 (notice). */
const PRI = 13 * 8 + 5;
const APP_NAME = "mitigation-manager";

/** RFC 5424 header fields are printable US-ASCII without spaces, bounded in length. */
const headerField = (value: string, max: number) =>
  value.replace(/[^\x21-\x7e]/g, "_").slice(0, max) || "-";

export function syslogMessage(e: OutboxEvent, hostname = os.hostname()): Buffer {
  const header = `<${PRI}>1 ${e.created_at.toISOString()} ${headerField(hostname, 255)} ${APP_NAME} ${process.pid} ${headerField(e.kind, 32)} -`;
  const message = Buffer.from(`${header} ${eventDocument(e)}`, "utf8");
  return Buffer.concat([Buffer.from(`${message.length} `, "ascii"), message]);
}

export function syslogSink(url: string, opts: { timeoutMs: number }): SiemSink {
  const target = new URL(url);
  const secure = target.protocol === "tls:";
  const host = target.hostname;
  const port = Number(target.port);
  let socket: net.Socket | undefined;

  const connect = () =>
    withTimeout(
      new Promise<net.Socket>((resolve, reject) => {
        const s = secure
          ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host })
          : net.connect({ host, port });
        s.once(secure ? "secureConnect" : "connect", () => {
          s.off("error", reject);
          resolve(s);
        });
        s.once("error", reject);
      }),
      opts.timeoutMs,
      `syslog connection to ${host}:${port}`,
    );

  const drop = (s: net.Socket) => {
    s.destroy();
    if (socket === s) socket = undefined;
  };

  return {
    name: "syslog",
    async send(events: OutboxEvent[]): Promise<SendResult> {
      let sent = 0;
      try {
        if (!socket || socket.destroyed) {
          const s = await connect();
          // A closed or broken connection is noticed here and replaced at the next send.
          s.on("error", () => drop(s));
          s.on("close", () => drop(s));
          // The collector never writes to us; reading keeps a half-closed peer from lingering.
          s.resume();
          socket = s;
        }
        const s = socket;
        for (const e of events) {
          await withTimeout(
            new Promise<void>((resolve, reject) =>
              s.write(syslogMessage(e), (err) => (err ? reject(err) : resolve())),
            ),
            opts.timeoutMs,
            "syslog write",
          );
          if (s.destroyed) throw new Error("syslog connection closed");
          sent++;
        }
        return { sent };
      } catch (err) {
        if (socket) drop(socket);
        return { sent, error: err as Error };
      }
    },
    async close() {
      if (socket) socket.end();
      socket = undefined;
    },
  };
}
