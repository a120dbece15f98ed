import net from "node:net";

export interface SyslogMessage {
  pri: string;
  msgid: string;
  event: Record<string, unknown> & { event_id: string; kind: string; host: string };
}

/**
 * A syslog collector in the test process: TCP, RFC 6587 octet counting, RFC 5424 messages whose
 * MSG is the JSON event. Parses strictly, so a malformed frame fails the test.
 */
export async function syslogCollector(port = 0) {
  const messages: SyslogMessage[] = [];
  const errors: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const space = buffered.indexOf(0x20);
        if (space < 0) return;
        const length = Number(buffered.subarray(0, space).toString("ascii"));
        if (!Number.isInteger(length) || length <= 0) {
          errors.push(`bad frame length ${buffered.subarray(0, space).toString()}`);
          socket.destroy();
          return;
        }
        if (buffered.length < space + 1 + length) return;
        const text = buffered.subarray(space + 1, space + 1 + length).toString("utf8");
        buffered = buffered.subarray(space + 1 + length);
        const m = /^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) - (.*)$/s.exec(text);
        if (!m) errors.push(`not RFC 5424: ${text}`);
        else
          messages.push({
            pri: m[1] as string,
            msgid: m[6] as string,
            event: JSON.parse(m[7] as string),
          });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    messages,
    errors,
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
