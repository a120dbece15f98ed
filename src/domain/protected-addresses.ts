// Addresses that no mitigation may cut a host off from: its loopback, its link, the service that
// manages it, the SIEM that watches it. A block of one of them turns a mitigation into an outage
// (or blinds the service), so both the engine and the agent refuse it, with the same function.
// Pure (no Node modules): workflow code may import it.

/** An address range: family, the address bytes and the prefix length in bits. */
export interface Cidr {
  family: 4 | 6;
  bytes: number[];
  prefix: number;
  /** The range as written after parsing, e.g. "10.0.0.0/8" or "::1/128". */
  text: string;
}

/** A range and why it is protected, e.g. "loopback" or "the Wazuh manager". */
export interface Protection {
  range: string;
  reason: string;
}

export const LOOPBACK: readonly Protection[] = [
  { range: "127.0.0.0/8", reason: "loopback" },
  { range: "::1/128", reason: "loopback" },
];

// A host needs its link's router and neighbours (IPv6 link-local) to reach anything at all.
export const LINK_LOCAL: readonly Protection[] = [
  { range: "169.254.0.0/16", reason: "link-local" },
  { range: "fe80::/10", reason: "link-local" },
];

function parseIpv4(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = parts.map((part) => (/^(0|[1-9][0-9]{0,2})$/.test(part) ? Number(part) : 256));
  return bytes.every((byte) => byte <= 255) ? bytes : null;
}

function parseIpv6(text: string): number[] | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string | undefined): number[] | null => {
    if (!half) return [];
    const out: number[] = [];
    const pieces = half.split(":");
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes(".")) {
        const v4 = parseIpv4(piece);
        if (!v4) return null;
        out.push(
          ((v4[0] as number) << 8) | (v4[1] as number),
          ((v4[2] as number) << 8) | (v4[3] as number),
        );
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) out.push(Number.parseInt(piece, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [...head, ...Array<number>(missing).fill(0), ...tail].flatMap((g) => [g >> 8, g & 0xff]);
}

/**
 * An IP address as bytes; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a dual-stack socket
 * sees an IPv4 peer) counts as the IPv4 address, so it cannot slip past an IPv4 range.
 */
export function parseIp(text: string): { family: 4 | 6; bytes: number[] } | null {
  const v4 = parseIpv4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIpv6(text.replace(/%.*$/, "")); // a zone id names an interface, not an address
  if (!v6) return null;
  const mapped = v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? { family: 4, bytes: v6.slice(12) } : { family: 6, bytes: v6 };
}

/** An address in its usual spelling: dotted IPv4, or IPv6 with the longest zero run as "::". */
export function formatIp(family: 4 | 6, bytes: readonly number[]): string {
  if (family === 4) return bytes.join(".");
  const groups = Array.from(
    { length: 8 },
    (_, i) => ((bytes[2 * i] as number) << 8) | (bytes[2 * i + 1] as number),
  );
  let best = { at: -1, length: 1 }; // a single zero group stays "0"
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j + 1;
  }
  const hex = (part: number[]) => part.map((g) => g.toString(16)).join(":");
  if (best.at < 0) return hex(groups);
  return `${hex(groups.slice(0, best.at))}::${hex(groups.slice(best.at + best.length))}`;
}

/**
 * "a.b.c.d/n", "x::y/n" or a bare address (a range of one), with the bits past the prefix cleared
 * so that `text` is the range's one spelling; throws naming the text.
 */
export function parseCidr(text: string): Cidr {
  const [address = "", prefixText, extra] = text.trim().split("/");
  const ip = parseIp(address);
  if (!ip || extra !== undefined) {
    throw new Error(`not an IP address or CIDR range: ${JSON.stringify(text)}`);
  }
  const bits = ip.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText ?? "0") || prefix > bits) {
    throw new Error(`prefix length of ${JSON.stringify(text)} must be 0-${bits}`);
  }
  const bytes = ip.bytes.map((byte, i) => byte & byteMask(prefix, i));
  return { family: ip.family, bytes, prefix, text: `${formatIp(ip.family, bytes)}/${prefix}` };
}

/** The mask of byte `i` of an address under a prefix of `prefix` bits. */
function byteMask(prefix: number, i: number): number {
  const bits = Math.max(0, Math.min(8, prefix - 8 * i));
  return (0xff << (8 - bits)) & 0xff;
}

export function cidrContains(cidr: Cidr, ip: { family: 4 | 6; bytes: number[] }): boolean {
  return (
    cidr.family === ip.family &&
    cidr.bytes.every((byte, i) => byte === ((ip.bytes[i] as number) & byteMask(cidr.prefix, i)))
  );
}

/** The first protection covering `address`, or null; throws when `address` is not an IP address. */
export function protectionOf(
  address: string,
  protections: readonly Protection[],
): Protection | null {
  const ip = parseIp(address);
  if (!ip) throw new Error(`not an IP address: ${JSON.stringify(address)}`);
  return protections.find((p) => cidrContains(parseCidr(p.range), ip)) ?? null;
}
