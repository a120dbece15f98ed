// The installation's command signing key: made once, on the first start, and kept in a file only
// its owner can read. Gateways started together on one data directory race to create it; the first
// link wins and the others read the winner's key, so every command is signed by one key.

import type { KeyObject } from "node:crypto";
import { createPublicKey, randomBytes } from "node:crypto";
import { chmod, link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { generateSigningKeys, privateSigningKey } from "../protocol/signing.ts";

export interface CommandSigningKey {
  privateKey: KeyObject;
  /** What agents verify commands with (SPKI PEM); handed out at enrollment. */
  publicKeyPem: string;
}

export async function loadCommandSigningKey(
  file: string,
): Promise<CommandSigningKey & { created: boolean }> {
  let created = false;
  let pem = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw new Error(`MM_COMMAND_SIGNING_KEY_FILE: cannot read ${file}: ${err.message}`);
  });
  if (pem === null) {
    pem = generateSigningKeys().privateKeyPem;
    created = await createExclusively(file, pem);
    if (!created) pem = await readFile(file, "utf8");
  }
  let privateKey: KeyObject;
  try {
    privateKey = privateSigningKey(pem);
  } catch (err) {
    throw new Error(
      `MM_COMMAND_SIGNING_KEY_FILE: ${file} is not an Ed25519 private key (PKCS#8 PEM): ${(err as Error).message}`,
    );
  }
  const publicKeyPem = createPublicKey(privateKey)
    .export({ type: "spki", format: "pem" })
    .toString();
  return { privateKey, publicKeyPem, created };
}

/** Writes the whole file under a temporary name, then links it in: false when another was first. */
async function createExclusively(file: string, content: string): Promise<boolean> {
  const dir = path.dirname(file);
  const made = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (made) await chmod(dir, 0o700); // the umask may have widened it
  const temporary = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(temporary, content, { mode: 0o600, flag: "wx" });
  try {
    await link(temporary, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await rm(temporary, { force: true });
  }
}
