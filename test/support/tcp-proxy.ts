import type { AddressInfo } from "node:net";
import { connect, createServer, type Socket } from "node:net";

/**
 * A loopback TCP proxy in front of a real server, to cut a dependency off from the service and
 * bring it back without touching the server other tests share. While cut, every connection is
 * closed at once and counted, so a test can wait for the service to have tried N times.
 */
export async function tcpProxy(target: { host: string; port: number }, listenPort = 0) {
  let cut = false;
  let refused = 0;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    if (cut) {
      refused++;
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    open.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", end).on("close", end).pipe(upstream);
    upstream.on("error", end).on("close", end).pipe(client);
  });
  // A refused or reset peer is the proxy's ordinary business, never a crash of the test.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenPort, "127.0.0.1", () => {
      server.off("error", reject).on("error", () => {});
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    /** Connections refused since the proxy was created. */
    refused: () => refused,
    cut() {
      cut = true;
      for (const s of open) s.destroy();
      open.clear();
    },
    restore() {
      cut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
