// Bearer secrets: agent API keys, enrollment tokens and operator tokens. Each is shown once, when
// it is created, and stored only as its SHA-256 digest (the secrets are 256 random bits, so a fast
// unsalted digest is as strong as a password hash would be, and lookups stay one index probe).
import { createHash, randomBytes } from "node:crypto";

export type SecretKind = "agent_key" | "enrollment_token" | "operator_token";

const PREFIX: Record<SecretKind, string> = {
  agent_key: "mmk_",
  enrollment_token: "mme_",
  operator_token: "mmo_",
};

export interface NewSecret {
  /** The secret itself: returned to the caller once, never stored. */
  value: string;
  hash: string;
  /** Enough of the secret to recognise it in a list, not enough to use it. */
  prefix: string;
}

export function newSecret(kind: SecretKind): NewSecret {
  const value = `${PREFIX[kind]}${randomBytes(32).toString("base64url")}`;
  return { value, hash: hashSecret(value), prefix: value.slice(0, 12) };
}

export function hashSecret(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** A random id with a readable kind prefix, e.g. agt_3f9a0c…; safe in NATS subjects and URLs. */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(10).toString("hex")}`;
}

/** The bearer token of an Authorization header, or null. */
export function bearerToken(header: string | undefined | null): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1] ?? null;
}
