// IP addresses and ranges: CEL's isIp/inCidr/isPrivateIp/isLoopbackIp and the webhook egress policy.

interface Ip {
  version: 4 | 6;
  value: bigint;
}

function parseV4(s: string): bigint | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    // Leading zeros are refused: some stacks read them as octal.
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return null;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

function parseV6(s: string): bigint | null {
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groupsOf = (half: string): bigint[] | null => {
    if (half === "") return [];
    const out: bigint[] = [];
    const parts = half.split(":");
    for (const [i, part] of parts.entries()) {
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseV4(part);
        if (v4 === null) return null;
        out.push(v4 >> 16n, v4 & 0xffffn);
      } else if (/^[0-9a-f]{1,4}$/i.test(part)) {
        out.push(BigInt(`0x${part}`));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groupsOf(halves[0] ?? "");
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? "") : [];
  if (!head || !tail) return null;
  // An embedded IPv4 part may only end the address.
  if (halves.length === 2 && halves[0]?.includes(".")) return null;
  const present = head.length + tail.length;
  if (halves.length === 1 ? present !== 8 : present > 7) return null;
  const groups = [...head, ...Array<bigint>(8 - present).fill(0n), ...tail];
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** IPv4 or IPv6 (no zone ids); null when the text is not an address. */
export function parseIp(s: string): Ip | null {
  if (typeof s !== "string" || s.length > 64) return null;
  const v4 = parseV4(s);
  if (v4 !== null) return { version: 4, value: v4 };
  const v6 = s.includes(":") ? parseV6(s) : null;
  return v6 === null ? null : { version: 6, value: v6 };
}

/** ::ffff:a.b.c.d is the IPv4 address a.b.c.d for every predicate below. */
function unmapped(ip: Ip): Ip {
  return ip.version === 6 && ip.value >> 32n === 0xffffn
    ? { version: 4, value: ip.value & 0xffffffffn }
    : ip;
}

function requireIp(s: string, fn: string): Ip {
  const ip = parseIp(s);
  // An error, not false: a condition over a garbled address must not hold by negation
  // (!isLoopbackIp("garbage") would otherwise let a mitigation block it).
  if (!ip) throw new Error(`${fn}: "${s.slice(0, 64)}" is not an IP address`);
  return ip;
}

function inRange(ip: Ip, base: Ip, prefix: number): boolean {
  if (ip.version !== base.version) return false;
  const shift = BigInt((ip.version === 4 ? 32 : 128) - prefix);
  return ip.value >> shift === base.value >> shift;
}

/** `cidr` may also be a bare address (a /32 or /128). An address matches in its IPv4-mapped form too. */
export function inCidr(ipText: string, cidr: string): boolean {
  const ip = requireIp(ipText, "inCidr");
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(cidr);
  const base = m?.[1] ? parseIp(m[1]) : null;
  if (!m || !base) throw new Error(`inCidr: "${cidr.slice(0, 64)}" is not a CIDR range`);
  const max = base.version === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) throw new Error(`inCidr: prefix /${prefix} is too long for "${cidr}"`);
  const ranges: Array<[Ip, number]> = [[base, prefix]];
  if (prefix >= 96 && unmapped(base) !== base) ranges.push([unmapped(base), prefix - 96]);
  return [ip, unmapped(ip)].some((candidate) => ranges.some(([b, p]) => inRange(candidate, b, p)));
}

const PRIVATE: ReadonlyArray<[string, number]> = [
  ["10.0.0.0", 8],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["fc00::", 7],
];
const LOOPBACK: ReadonlyArray<[string, number]> = [
  ["127.0.0.0", 8],
  ["::1", 128],
];
// 169.254.169.254 is the metadata service of most clouds.
const LINK_LOCAL: ReadonlyArray<[string, number]> = [
  ["169.254.0.0", 16],
  ["fe80::", 10],
];
const UNSPECIFIED: ReadonlyArray<[string, number]> = [
  ["0.0.0.0", 8],
  ["::", 128],
];

function inAny(ip: Ip, ranges: ReadonlyArray<[string, number]>): boolean {
  return ranges.some(([base, prefix]) => inRange(ip, parseIp(base) as Ip, prefix));
}

/** RFC 1918 and RFC 4193 (fc00::/7), as Go's net.IP.IsPrivate; loopback and link-local are not private. */
export function isPrivateIp(s: string): boolean {
  return inAny(unmapped(requireIp(s, "isPrivateIp")), PRIVATE);
}

export function isLoopbackIp(s: string): boolean {
  return inAny(unmapped(requireIp(s, "isLoopbackIp")), LOOPBACK);
}

export function isLinkLocalIp(s: string): boolean {
  return inAny(unmapped(requireIp(s, "isLinkLocalIp")), LINK_LOCAL);
}

/** 0.0.0.0/8 and ::, which connect to the local host on most systems. */
export function isUnspecifiedIp(s: string): boolean {
  return inAny(unmapped(requireIp(s, "isUnspecifiedIp")), UNSPECIFIED);
}
