// Which command frames the agent acts on. A command runs root actions, so it must be signed by the
// service (Ed25519, key received at enrollment or given with --command-key) for this agent: a
// man in the middle, a forged gateway or a frame captured for another agent cannot make it act.
// An agent without a key (enrolled by a service that did not sign yet) runs unsigned commands only
// when its operator said so with --insecure.
import type { Logger } from "../log.ts";
import type { Command, UpdateRules } from "../protocol/messages.ts";
import { publicSigningKey, verifyCommand, verifyRules } from "../protocol/signing.ts";

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

export const RULES_SIGNATURE_INVALID = "rules signature invalid";

/**
 * Why an update_rules frame must not be applied, or null when it may. Rules decide what the
 * endpoint detects (an attacker's first wish is to blind it), so they are held to the commands'
 * standard: signed for this agent, unexpired, and newer than the last set applied, so that a
 * captured older frame cannot roll the agent back (a real rollback is a new, newer frame).
 * `lastIssuedAt` is the issued_at of the last frame this agent applied.
 */
export type RulesCheck = (frame: UpdateRules, lastIssuedAt: string | undefined) => string | null;

export function rulesCheck(options: {
  agentId: string;
  keyPem: string | undefined;
  insecure: boolean;
  now?: () => number;
}): RulesCheck {
  const { agentId, keyPem, insecure } = options;
  const now = options.now ?? Date.now;
  const key = keyPem === undefined ? undefined : publicSigningKey(keyPem);
  return (frame, lastIssuedAt) => {
    if (key === undefined) {
      return insecure
        ? null
        : `${RULES_SIGNATURE_INVALID}: this agent has no command signing key (pass --command-key, or --insecure to apply unsigned rules)`;
    }
    if (frame.signature === undefined) return `${RULES_SIGNATURE_INVALID}: the frame is not signed`;
    if (!verifyRules(key, agentId, frame, frame.signature)) return RULES_SIGNATURE_INVALID;
    if (frame.expires_at === undefined || frame.issued_at === undefined)
      return `${RULES_SIGNATURE_INVALID}: a signed frame must carry issued_at and expires_at`;
    if (Date.parse(frame.expires_at) <= now())
      return `rules frame expired at ${frame.expires_at}; not applied`;
    if (lastIssuedAt !== undefined && Date.parse(frame.issued_at) <= Date.parse(lastIssuedAt))
      return `rules frame issued at ${frame.issued_at} is not newer than the set applied (issued at ${lastIssuedAt}); not applied`;
    return null;
  };
}
