// The proxy that cuts the service from a dependency (the gateway from NATS in the chaos run, the
// engine from Neo4j in the outage test): it must pass bytes both ways, drop every connection when
// cut, refuse new ones while cut, and pass again once restored.
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { tcpProxy } from "./tcp-proxy.ts";

let echo: Server;
let proxy: Awaited<ReturnType<typeof tcpProxy>>;
let proxyPort: number;

const listening = (server: Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
  );

beforeAll(async () => {
  echo = createServer((socket) => socket.pipe(socket));
  const echoPort = await listening(echo);
  proxy = await tcpProxy({ host: "127.0.0.1", port: echoPort });
  proxyPort = proxy.port;
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
  proxy.cut();
  await closed;
  expect(open.destroyed).toBe(true);
  expect(await roundTrip("during")).toBe("closed");
  expect(proxy.refused()).toBe(1);

  proxy.restore();
  expect(await roundTrip("after")).toBe("after");
});
