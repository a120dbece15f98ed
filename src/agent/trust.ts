// Which command frames the agent acts on. A command runs root actions, so it must be signed by the
// service (Ed25519, key received at enrollment or given with --command-key) for this agent: a
// man in the middle, a forged gateway or a frame captured for another agent cannot make it act.
// An agent without a key (enrolled by a service that did not sign yet) runs unsigned commands only
// when its operator said so with --insecure.
import type { Logger } from "../log.ts";
import type { Command } from "../protocol/messages.ts";
import { publicSigningKey, verifyCommand } from "../protocol/signing.ts";

export const SIGNATURE_INVALID = "command signature invalid";

/** Why a command must not run (its signature), or null when it may. */
export type CommandCheck = (command: Command) => string | null;

export function commandCheck(options: {
  agentId: string;
  /** The service's public key (SPKI PEM); undefined: none known. */
  keyPem: string | undefined;
  insecure: boolean;
  log: Logger;
}): CommandCheck {
  const { agentId, keyPem, insecure, log } = options;
  if (keyPem === undefined) {
    log.warn("commands_unsigned", {
      reason: "no command signing key (enrolled by an older service; --command-key sets one)",
      runs_unsigned_commands: insecure,
    });
    return insecure
      ? () => null
      : () =>
          `${SIGNATURE_INVALID}: this agent has no command signing key (pass --command-key, or --insecure to run unsigned commands)`;
  }
  let key: ReturnType<typeof publicSigningKey>;
  try {
    key = publicSigningKey(keyPem);
  } catch (error) {
    throw new Error(`command signing key unusable: ${(error as Error).message}`);
  }
  return (command) => {
    if (command.signature === undefined) return `${SIGNATURE_INVALID}: the command is not signed`;
    return verifyCommand(key, agentId, command, command.signature) ? null : SIGNATURE_INVALID;
  };
}

/** "command expired" once the command's own expires_at has passed (it is signed with it). */
export function expiredCommand(command: Command, now = Date.now()): string | null {
  if (command.expires_at === undefined || Date.parse(command.expires_at) > now) return null;
  return `command expired at ${command.expires_at}; not run`;
}
