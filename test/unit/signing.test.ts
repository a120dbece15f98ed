import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../src/domain/canonical-json.ts";
import {
  generateSigningKeys,
  privateSigningKey,
  publicSigningKey,
  signCommand,
  verifyCommand,
} from "../../src/protocol/signing.ts";

const keys = generateSigningKeys();
const priv = privateSigningKey(keys.privateKeyPem);
const pub = publicSigningKey(keys.publicKeyPem);
const command = {
  id: "cmd-1",
  command: "kill-process",
  priority: "high",
  details: { pid: 42, process_name: "ncat" },
  expires_at: "2026-12-01T00:05:00.000Z",
};

describe("command signing", () => {
  it("canonical JSON sorts keys at every level and drops undefined", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: null }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"y":null,"z":0}]},"b":1}',
    );
  });

  it("verifies the signed command, whatever the key order it travels in", () => {
    const signature = signCommand(priv, "agent-a", command);
    const { details: _, ...fields } = command;
    const reordered = { details: { process_name: "ncat", pid: 42 }, ...fields };
    expect(verifyCommand(pub, "agent-a", reordered, signature)).toBe(true);
  });

  it("refuses a command replayed to another agent or altered in any signed field", () => {
    const signature = signCommand(priv, "agent-a", command);
    expect(verifyCommand(pub, "agent-b", command, signature)).toBe(false);
    expect(verifyCommand(pub, "agent-a", { ...command, details: { pid: 1 } }, signature)).toBe(
      false,
    );
    expect(verifyCommand(pub, "agent-a", { ...command, id: "cmd-2" }, signature)).toBe(false);
    expect(verifyCommand(pub, "agent-a", { ...command, expires_at: undefined }, signature)).toBe(
      false,
    );
    expect(verifyCommand(pub, "agent-a", command, "not base64 at all!")).toBe(false);
  });

  it("refuses a signature made with another key", () => {
    const other = privateSigningKey(generateSigningKeys().privateKeyPem);
    expect(verifyCommand(pub, "agent-a", command, signCommand(other, "agent-a", command))).toBe(
      false,
    );
  });
});
