// Where webhooks may go. Mitigation URLs are written through the API, so without a policy a catalog
// writer could make the worker POST to the cloud metadata service or to services on its loopback.
//
// A destination is allowed when its host is named in MM_WEBHOOK_ALLOW (a host name, an address or
// a CIDR range) or is the host of MM_FIREWALL_WEBHOOK_URL (the operator configured it), or when
// every address its name resolves to lies in an allowed range. Whatever the name, each resolved
// address is checked when connecting, and the connection goes to the checked address (no window for
// DNS rebinding): link-local addresses (169.254.0.0/16 with the metadata service, fe80::/10) are
// never contacted, loopback and unspecified ones only when an address or range entry covers them
// (so 127.0.0.1, not localhost, allows a firewall on the worker's own host).
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { inCidr, isLinkLocalIp, isLoopbackIp, isUnspecifiedIp, parseIp } from "./ip.ts";

/** A destination the policy refuses: a permanent failure, never worth a retry. */
export class EgressRefused extends Error {
  override name = "EgressRefused";
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/** null when `entry` is a host name, an address or a CIDR range; else what is wrong with it. */
export function allowEntryProblem(entry: string): string | null {
  if (HOST_NAME.test(entry) || parseIp(entry)) return null;
  const [base, prefix, extra] = entry.split("/");
  const ip = base ? parseIp(base) : null;
  const max = ip?.version === 4 ? 32 : 128;
  if (ip && extra === undefined && /^\d{1,3}$/.test(prefix ?? "") && Number(prefix) <= max)
    return null;
  return `"${entry}" is not a host name, an IP address or a CIDR range`;
}

export interface EgressPolicy {
  /** POSTs `body`; resolves with the status (redirects are not followed), rejects with EgressRefused. */
  post(
    url: string,
    body: string,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<number>;
}

export function egressPolicy(opts: { allow: string[]; firewallWebhookUrl: string }): EgressPolicy {
  const implicit = new URL(opts.firewallWebhookUrl).hostname;
  const entries = [...opts.allow, bare(implicit)].map((e) => e.toLowerCase());
  const names = new Set(entries.filter((e) => HOST_NAME.test(e) && !parseIp(e)));
  const ranges = entries.filter((e) => !names.has(e));
  const inRanges = (address: string) => ranges.some((r) => inCidr(address, r));

  /** Why `address` (reached through `host`) is refused, or null. */
  function addressProblem(host: string, address: string): string | null {
    if (isLinkLocalIp(address)) return `${host} is the link-local address ${address}`;
    if ((isLoopbackIp(address) || isUnspecifiedIp(address)) && !inRanges(address))
      return `${host} is the local address ${address}; only an address or range in MM_WEBHOOK_ALLOW allows it`;
    if (!names.has(host) && !inRanges(address))
      return `${host} (${address}) is not allowed by MM_WEBHOOK_ALLOW`;
    return null;
  }

  const lookup = ((host: string, options: { all?: boolean }, callback: LookupCallback) => {
    dnsLookup(host, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err);
      const problem = addresses.map((a) => addressProblem(host, a.address)).find(Boolean);
      if (problem) return callback(new EgressRefused(`webhook host ${problem}`));
      const [first] = addresses;
      if (options.all) callback(null, addresses);
      else if (first) callback(null, first.address, first.family);
      else callback(new Error(`${host} has no address`));
    });
  }) as LookupFunction;

  function target(url: string): URL {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
      throw new EgressRefused(`webhook ${url} is not http(s)`);
    if (parsed.username || parsed.password)
      throw new EgressRefused("webhook URLs must not carry credentials (user:password@)");
    const host = bare(parsed.hostname).toLowerCase();
    // A literal address is connected to without a lookup, so it is checked here.
    const problem = parseIp(host) ? addressProblem(host, host) : null;
    if (problem) throw new EgressRefused(`webhook host ${problem}`);
    return parsed;
  }

  return {
    async post(url, body, headers, timeoutMs) {
      const to = target(url);
      const client = to.protocol === "https:" ? https : http;
      return new Promise((resolve, reject) => {
        const req = client.request(
          to,
          {
            method: "POST",
            headers: { ...headers, "content-length": Buffer.byteLength(body) },
            lookup,
            signal: AbortSignal.timeout(timeoutMs),
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    },
  };
}

type LookupCallback = (
  err: Error | null,
  address?: string | LookupAddress[],
  family?: number,
) => void;

/** URL.hostname keeps the brackets of an IPv6 address. */
function bare(host: string): string {
  return host.startsWith("[") ? host.slice(1, -1) : host;
}
