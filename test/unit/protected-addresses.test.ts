import { describe, expect, it } from "vitest";
import {
  cidrContains,
  LINK_LOCAL,
  LOOPBACK,
  parseCidr,
  parseIp,
  protectionOf,
} from "../../src/domain/protected-addresses.ts";

describe("protected addresses", () => {
  it("parses IPv4, IPv6 (compressed, embedded IPv4, zone id) and refuses the rest", () => {
    expect(parseIp("10.1.2.3")).toEqual({ family: 4, bytes: [10, 1, 2, 3] });
    expect(parseIp("::1")?.bytes).toEqual([...Array(15).fill(0), 1]);
    expect(parseIp("fe80::1%eth0")).toMatchObject({
      family: 6,
      bytes: [0xfe, 0x80, ...Array(13).fill(0), 1],
    });
    expect(parseIp("64:ff9b::10.0.0.1")?.bytes.slice(12)).toEqual([10, 0, 0, 1]);
    expect(parseIp("::ffff:127.0.0.1")).toEqual({ family: 4, bytes: [127, 0, 0, 1] });
    for (const bad of [
      "",
      "1.2.3",
      "1.2.3.256",
      "01.2.3.4",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "12345::",
      "example.org",
      "1:2:3:4:5:6:7::8",
    ]) {
      expect(parseIp(bad), bad).toBeNull();
    }
  });

  it("parses CIDR ranges and names the bad one", () => {
    expect(parseCidr("10.0.0.0/8")).toMatchObject({ family: 4, prefix: 8, text: "10.0.0.0/8" });
    expect(parseCidr("2001:db8::5")).toMatchObject({
      family: 6,
      prefix: 128,
      text: "2001:db8::5/128",
    });
    // one spelling per range: host bits cleared, IPv6 compressed, mapped IPv4 as IPv4
    expect(parseCidr("10.1.2.3/8").text).toBe("10.0.0.0/8");
    expect(parseCidr("2001:0db8:0:0:1:0:0:1/128").text).toBe("2001:db8::1:0:0:1/128");
    expect(parseCidr("fe80:0:0:0:0:0:0:0/10").text).toBe("fe80::/10");
    expect(parseCidr("::/0").text).toBe("::/0");
    expect(parseCidr("1:0:2:0:3:0:4:0").text).toBe("1:0:2:0:3:0:4:0/128");
    expect(parseCidr("::ffff:192.0.2.1").text).toBe("192.0.2.1/32");
    expect(() => parseCidr("10.0.0.0/33")).toThrow(/prefix length of "10.0.0.0\/33" must be 0-32/);
    expect(() => parseCidr("10.0.0.0/8/1")).toThrow(/not an IP address or CIDR range/);
    expect(() => parseCidr("manager.local")).toThrow(/"manager.local"/);
    expect(() => parseCidr("::/x")).toThrow(/prefix length/);
  });

  it("tests membership bit by bit, per family", () => {
    const ip = (text: string) => parseIp(text) as NonNullable<ReturnType<typeof parseIp>>;
    expect(cidrContains(parseCidr("10.20.0.0/14"), ip("10.23.255.255"))).toBe(true);
    expect(cidrContains(parseCidr("10.20.0.0/14"), ip("10.24.0.0"))).toBe(false);
    expect(cidrContains(parseCidr("0.0.0.0/0"), ip("203.0.113.9"))).toBe(true);
    expect(cidrContains(parseCidr("0.0.0.0/0"), ip("2001:db8::1"))).toBe(false);
    expect(cidrContains(parseCidr("2001:db8:ab00::/40"), ip("2001:db8:abff::1"))).toBe(true);
    expect(cidrContains(parseCidr("2001:db8:ab00::/40"), ip("2001:db8:ac00::1"))).toBe(false);
  });

  it("names the protection covering an address, mapped IPv4 included", () => {
    const protections = [
      ...LOOPBACK,
      ...LINK_LOCAL,
      { range: "192.0.2.10", reason: "the Wazuh manager" },
    ];
    expect(protectionOf("127.8.9.10", protections)?.reason).toBe("loopback");
    expect(protectionOf("::ffff:127.0.0.1", protections)?.reason).toBe("loopback");
    expect(protectionOf("0:0:0:0:0:0:0:1", protections)?.reason).toBe("loopback");
    expect(protectionOf("fe80::1234", protections)?.reason).toBe("link-local");
    expect(protectionOf("192.0.2.10", protections)?.reason).toBe("the Wazuh manager");
    expect(protectionOf("192.0.2.11", protections)).toBeNull();
    expect(() => protectionOf("nope", protections)).toThrow(/not an IP address: "nope"/);
  });
});
