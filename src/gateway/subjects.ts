// NATS subjects between the processes of the service (core NATS, not JetStream: PostgreSQL holds
// the durable state, so a lost notification only delays a command until the agent's next
// session claims its backlog). Agent ids are `agt_<hex>`, safe as a subject token.

/** Whoever holds the agent's session listens on `mm.agent.<id>.*`; nobody does while it is offline. */
export const agentSubjects = (agentId: string) => `mm.agent.${agentId}.*`;

/** "Commands are waiting for you": the holder claims them from PostgreSQL and sends them. */
export const commandSubject = (agentId: string) => `mm.agent.${agentId}.cmd`;

/** Ends sessions: a newer session replaced them, or their key was revoked. */
export const controlSubject = (agentId: string) => `mm.agent.${agentId}.control`;

/**
 * "Apply this rule set version": a rollout's wave; the holder sends the agent update_rules. It
 * travels on the command subject, the one subject workers may publish to (stack/nats/config.sh).
 */
export interface RulesNotice {
  rule_set: string;
  version: number;
  /**
   * The agent's assigned rule set versions (its groups', this one among them), read once per wave
   * by the rollout: the agent is sent all their files as one complete set. Absent: the version's
   * files are added to what the agent runs (a push to one host).
   */
  sets?: { rule_set: string; version: number }[];
  /** A push by technique: these rule versions, not a stored rule set's (always added). */
  rules?: { id: string; version: string }[];
}

export interface CommandNotice {
  ids: string[];
  /** Critical commands (isolation): sent at once, past a full delivery window (session.ts). */
  critical?: boolean;
}

export type ControlMessage =
  /** Every session of the agent other than `session` ends. */
  | { action: "replaced"; session: string }
  /** Sessions authenticated with one of these keys end (all of the agent's when absent). */
  | { action: "revoked"; key_ids?: string[] };

export const encode = (value: CommandNotice | ControlMessage | RulesNotice): Uint8Array =>
  new TextEncoder().encode(JSON.stringify(value));
