// Rule rollouts' activities: point groups at a rule set version, and deliver one wave of it to
// agents through their gateways (a NATS notice on the agent's command subject → an update_rules frame), waiting for each agent's
// rules_status. The waiting is polling PostgreSQL, where the gateway records every report.
import type { NatsConnection } from "@nats-io/transport-node";
import { ApplicationFailure, Context } from "@temporalio/activity";
import { commandSubject, encode } from "../gateway/subjects.ts";
import type { Db } from "../store/db.ts";
import {
  type AgentRolloutStatus,
  assignmentsOf,
  rolloutStore,
  ruleSetFiles,
} from "../store/rules-rollout.ts";

export interface WaveInput {
  ruleSet: string;
  version: number;
  agents: string[];
  /** How long an agent has to report before it is sent the rules again. */
  agentTimeoutMs: number;
  /** Sends after the first to agents that have not reported. */
  retries: number;
}

export type AgentOutcome = { status: AgentRolloutStatus; error?: string };

const POLL_MS = 250;

export function rolloutActivities(deps: { db: Db; nc: NatsConnection }) {
  const store = rolloutStore(deps.db);
  return {
    /** Assigns the version to the groups (given, or those running the set) and lists their agents. */
    async startRollout(input: { ruleSet: string; version: number; groups?: string[] }) {
      const files = await ruleSetFiles(deps.db, input.ruleSet, input.version);
      if (!files.length) {
        throw ApplicationFailure.nonRetryable(
          `rule set ${input.ruleSet} version ${input.version} does not exist or holds no rule`,
        );
      }
      const target = await store.assignAndTarget(input.ruleSet, input.version, input.groups);
      return { ...target, rules: files.length };
    },

    /**
     * Sends the rule set version to the wave's online agents and waits for their reports: applied
     * (the agent runs every file's checksum), rejected (with the agent's error), or still pending
     * after the retries. Offline agents are left to reconciliation when they reconnect.
     */
    async deliverWave(input: WaveInput): Promise<Record<string, AgentOutcome>> {
      const expected = await ruleSetFiles(deps.db, input.ruleSet, input.version);
      const online = await store.online(input.agents);
      const outcomes: Record<string, AgentOutcome> = {};
      for (const id of input.agents)
        outcomes[id] = { status: online.has(id) ? "pending" : "offline" };
      // Each agent is sent its whole assigned set (this version and its other groups' sets), read
      // here for the wave in one query rather than by the gateway once per agent.
      const assignments = await assignmentsOf(deps.db, [...online]);
      const notice = (id: string) =>
        encode({
          rule_set: input.ruleSet,
          version: input.version,
          sets: assignments.get(id) ?? [],
        });
      let waiting = [...online];
      // Settles the agents that reported; the others keep waiting.
      const sentAt = new Date();
      const settle = async () => {
        const standing = await store.standing(waiting, expected, sentAt);
        waiting = waiting.filter((id) => {
          const s = standing.get(id);
          if (!s || s.status === "pending") return true;
          outcomes[id] = s;
          return false;
        });
      };
      for (let attempt = 0; attempt <= input.retries && waiting.length; attempt++) {
        // Agents that already run this version are not sent it again.
        await settle();
        for (const id of waiting) deps.nc.publish(commandSubject(id), notice(id));
        const deadline = Date.now() + input.agentTimeoutMs;
        while (waiting.length && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, POLL_MS));
          Context.current().heartbeat({ attempt, waiting: waiting.length });
          await settle();
        }
      }
      return outcomes;
    },
  };
}

export type RolloutActivities = ReturnType<typeof rolloutActivities>;
