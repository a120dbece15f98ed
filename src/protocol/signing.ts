// Commands are signed by the service and verified by the agent before it acts, so that whoever sits
// between the two (a man in the middle of a plain connection, a forged or compromised gateway) cannot
// make an agent run root actions. The service holds an Ed25519 key made at install; agents receive its
// public half at enrollment.
//
// What is signed decides what runs: the agent it is meant for (no replay to another agent), the
// command id (the agent's ledger runs an id once, so a replay to the same agent does nothing), the
// command, its priority, its details and its expiry (a captured frame is worthless once expired).
// The bytes signed are a canonical JSON of those fields, so a gateway may re-serialise frames freely.

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { canonicalJson } from "../domain/canonical-json.ts";

/** The fields of a command frame that the signature covers, besides the agent's id. */
export interface SignedCommand {
  id: string;
  command: string;
  priority: string;
  details: Record<string, unknown>;
  /** ISO-8601 time after which the agent must not run the command. */
  expires_at?: string;
}

function signedBytes(agentId: string, command: SignedCommand): Buffer {
  return Buffer.from(
    canonicalJson({
      agent_id: agentId,
      id: command.id,
      command: command.command,
      priority: command.priority,
      details: command.details,
      expires_at: command.expires_at ?? null,
    }),
  );
}

/** The base64 Ed25519 signature of a command for one agent. */
export function signCommand(
  privateKey: KeyObject,
  agentId: string,
  command: SignedCommand,
): string {
  return sign(null, signedBytes(agentId, command), privateKey).toString("base64");
}

/** Whether `signature` is the service's signature of this command for this agent. */
export function verifyCommand(
  publicKey: KeyObject,
  agentId: string,
  command: SignedCommand,
  signature: string,
): boolean {
  try {
    return verify(null, signedBytes(agentId, command), publicKey, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}

/** A new Ed25519 key pair as PEM (PKCS#8 private, SPKI public). */
export function generateSigningKeys(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

export function privateSigningKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== "ed25519")
    throw new Error("the command signing key is not Ed25519");
  return key;
}

export function publicSigningKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== "ed25519")
    throw new Error("the service's command signing key is not Ed25519");
  return key;
}

/**
 * The fields of an update_rules frame the signature covers, besides the agent's id. File contents
 * are bound through their checksums, which the agent verifies against each content.
 */
export interface SignedRules {
  rules: { name: string; version: number; checksum: string }[];
  rule_set?: { name: string; version: number } | undefined;
  complete?: boolean | undefined;
  issued_at?: string | undefined;
  expires_at?: string | undefined;
}

function rulesBytes(agentId: string, frame: SignedRules): Buffer {
  return Buffer.from(
    canonicalJson({
      agent_id: agentId,
      operation: "update_rules",
      rule_set: frame.rule_set
        ? { name: frame.rule_set.name, version: frame.rule_set.version }
        : null,
      complete: frame.complete ?? false,
      files: frame.rules.map((r) => ({ name: r.name, version: r.version, checksum: r.checksum })),
      issued_at: frame.issued_at ?? null,
      expires_at: frame.expires_at ?? null,
    }),
  );
}

/** The base64 Ed25519 signature of an update_rules frame for one agent. */
export function signRules(privateKey: KeyObject, agentId: string, frame: SignedRules): string {
  return sign(null, rulesBytes(agentId, frame), privateKey).toString("base64");
}

/** Whether `signature` is the service's signature of this update_rules frame for this agent. */
export function verifyRules(
  publicKey: KeyObject,
  agentId: string,
  frame: SignedRules,
  signature: string,
): boolean {
  try {
    return verify(null, rulesBytes(agentId, frame), publicKey, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}
