// The proxy that cuts the gateway from NATS in the chaos run: it must pass bytes both ways, drop
// every connection when cut, refuse new ones while cut, and pass again once restored.
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CuttableProxy } from "./tcp-proxy.ts";

let echo: Server;
let proxy: CuttableProxy;
let proxyPort: number;

const listening = (server: Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
  );

beforeAll(async () => {
  echo = createServer((socket) => socket.pipe(socket));
  const echoPort = await listening(echo);
  // A free port for the proxy: taken by a throwaway server, then released.
  const probe = createServer();
  proxyPort = await listening(probe);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  proxy = new CuttableProxy(proxyPort, echoPort);
  await proxy.start();
});

afterAll(async () => {
  await proxy.close();
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

/** Connects through the proxy and resolves with what comes back for `text`, or "closed". */
function roundTrip(text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket: Socket = createConnection({ host: "127.0.0.1", port: proxyPort }, () =>
      socket.write(text),
    );
    socket.once("data", (data) => {
      resolve(data.toString());
      socket.destroy();
    });
    socket.once("close", () => resolve("closed"));
    socket.once("error", () => resolve("closed"));
  });
}

it("passes bytes, drops and refuses connections while cut, and passes again once restored", async () => {
  expect(await roundTrip("before")).toBe("before");

  const open = createConnection({ host: "127.0.0.1", port: proxyPort });
  await new Promise((resolve) => open.once("connect", resolve));
  const closed = new Promise((resolve) => open.once("close", resolve));
  proxy.sever();
  await closed;
  expect(open.destroyed).toBe(true);
  expect(await roundTrip("during")).toBe("closed");

  proxy.restore();
  expect(await roundTrip("after")).toBe("after");
});
