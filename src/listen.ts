// How the REST API and the agent gateway listen: HTTP, or HTTPS when a certificate is configured,
// with what no client may take away from the others. A socket error that nobody listens to ends the
// process (a client resetting mid-request is enough), so every socket gets a handler on accept;
// slow or endless headers are cut at a deadline (408); a malformed request gets 400 and is closed.
import { readFile } from "node:fs/promises";
import { STATUS_CODES } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { serve } from "@hono/node-server";
import type { Logger } from "./log.ts";

export interface ListenOptions {
  fetch: (request: Request) => Response | Promise<Response>;
  host: string;
  port: number;
  /** PEM files; unset: plain HTTP. */
  tls?: { certFile: string; keyFile: string };
  /** From accept to the end of the request headers. */
  headersTimeoutMs: number;
  log: Logger;
  /** Names the server in logs, e.g. "gateway". */
  name: string;
}

export type Listening = { server: ReturnType<typeof serve>; url: string };

export async function listen(opts: ListenOptions): Promise<Listening> {
  const tls = opts.tls && {
    cert: await readFile(opts.tls.certFile),
    key: await readFile(opts.tls.keyFile),
  };
  const serverOptions = {
    headersTimeout: opts.headersTimeoutMs,
    requestTimeout: 2 * opts.headersTimeoutMs,
    // The deadlines hold only as well as the server checks them.
    connectionsCheckingInterval: Math.min(1_000, opts.headersTimeoutMs / 2),
    ...tls,
  };
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve(
      {
        fetch: opts.fetch,
        port: opts.port,
        hostname: opts.host,
        serverOptions,
        ...(tls && { createServer: createHttpsServer }),
      },
      () => resolve(s),
    );
    s.once("error", reject);
  });
  const guard = (socket: Duplex) => {
    socket.on("error", (err: NodeJS.ErrnoException) =>
      opts.log.debug(`${opts.name} socket error`, { error: err.code ?? err.message }),
    );
  };
  server.on("connection", guard);
  if (tls) server.on("secureConnection", guard);
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    opts.log.debug(`${opts.name} client error`, { error: err.code ?? err.message });
    if (!socket.writable || err.code === "ECONNRESET") return socket.destroy();
    refuse(socket, err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400);
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  return { server, url: `${tls ? "https" : "http"}://${host}:${port}` };
}

/** Answers a raw socket with a bodiless status and closes it. */
export function refuse(socket: Duplex, status: number): void {
  if (!socket.writable) return void socket.destroy();
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
  );
  setTimeout(() => socket.destroy(), 1_000).unref();
}
