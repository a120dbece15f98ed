import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedWebhook {
  path: string;
  idempotencyKey: string | undefined;
  body: Record<string, unknown>;
}

/**
 * A real HTTP server on loopback standing in for a SOAR/firewall: records calls, answers as told
 * (after `before` settles, when given: a SOAR that takes its time).
 */
export async function webhookReceiver(
  status: (req: ReceivedWebhook, attempt: number) => number = () => 200,
  opts: { before?: (req: ReceivedWebhook) => Promise<void> } = {},
) {
  const received: ReceivedWebhook[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const call: ReceivedWebhook = {
        path: req.url ?? "/",
        idempotencyKey: req.headers["idempotency-key"] as string | undefined,
        body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}"),
      };
      received.push(call);
      const attempt = received.filter((r) => r.path === call.path).length;
      void (opts.before?.(call) ?? Promise.resolve()).then(() => {
        res.statusCode = status(call, attempt);
        res.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (p = "/hook") => `http://127.0.0.1:${port}${p}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
