import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowEntryProblem, EgressRefused, egressPolicy } from "../../src/domain/egress.ts";

/** A loopback server that counts requests and answers with `status` (and a Location for 3xx). */
async function server(status: number, location?: string) {
  const seen: string[] = [];
  const s: Server = createServer((req, res) => {
    seen.push(req.url ?? "/");
    req.resume();
    res.writeHead(status, location ? { location } : {}).end();
  });
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as AddressInfo;
  return { port, seen, close: () => new Promise<void>((r) => s.close(() => r())) };
}

let target: Awaited<ReturnType<typeof server>>;
let redirector: Awaited<ReturnType<typeof server>>;
beforeAll(async () => {
  target = await server(200);
  redirector = await server(302, `http://127.0.0.1:${target.port}/elsewhere`);
});
afterAll(async () => {
  await target.close();
  await redirector.close();
});

const firewallWebhookUrl = "http://192.0.2.1/firewall/block";
const post = (allow: string[], url: string) =>
  egressPolicy({ allow, firewallWebhookUrl }).post(url, "{}", {}, 5_000);

describe("egressPolicy", () => {
  it("posts to a loopback address named in the allow list", async () => {
    expect(await post(["127.0.0.1"], `http://127.0.0.1:${target.port}/ok`)).toBe(200);
    expect(target.seen).toContain("/ok");
  });

  it.each([
    [[], "http://127.0.0.1:PORT/x", "only an address or range in MM_WEBHOOK_ALLOW allows it"],
    [["localhost"], "http://localhost:PORT/x", "local address"],
    [["10.0.0.0/8"], "http://[::1]:PORT/x", "local address ::1"],
    [["127.0.0.1"], "http://0.0.0.0:PORT/x", "local address 0.0.0.0"],
    [["169.254.0.0/16"], "http://169.254.169.254/latest/meta-data/", "link-local"],
    [["fe80::/10"], "http://[fe80::1]/x", "link-local"],
    [["127.0.0.1"], "http://[::ffff:169.254.169.254]/x", "link-local"],
    [["127.0.0.1"], "http://198.51.100.7/x", "not allowed by MM_WEBHOOK_ALLOW"],
    [["127.0.0.1"], "http://user:pass@127.0.0.1:PORT/x", "must not carry credentials"],
    [["127.0.0.1"], "file:///etc/passwd", "not http(s)"],
  ])("refuses %j → %s", async (allow, url, message) => {
    const before = target.seen.length;
    const attempt = post(allow, url.replace("PORT", String(target.port)));
    await expect(attempt).rejects.toBeInstanceOf(EgressRefused);
    await expect(attempt).rejects.toThrow(message);
    expect(target.seen.length).toBe(before);
  });

  it("allows the configured firewall's host without an entry", async () => {
    const policy = egressPolicy({
      allow: [],
      firewallWebhookUrl: `http://127.0.0.1:${target.port}/firewall/block`,
    });
    expect(await policy.post(`http://127.0.0.1:${target.port}/fw`, "{}", {}, 5_000)).toBe(200);
  });

  it("does not follow a redirect: the status comes back and the body goes nowhere else", async () => {
    const before = target.seen.length;
    expect(await post(["127.0.0.1"], `http://127.0.0.1:${redirector.port}/hook`)).toBe(302);
    expect(redirector.seen).toContain("/hook");
    expect(target.seen.length).toBe(before);
  });

  it("checks allow entries", () => {
    for (const ok of ["soar.example.com", "10.0.0.0/8", "127.0.0.1", "fd00::/8", "::1"])
      expect(allowEntryProblem(ok), ok).toBeNull();
    for (const bad of ["10.0.0.0/33", "http://x", "a b", "1.2.3.4/8/1", "-x.com"])
      expect(allowEntryProblem(bad), bad).toContain("is not a host name");
  });
});
