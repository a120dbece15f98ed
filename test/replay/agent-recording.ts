// What the recorders of agent-facing workflows share: the service with its real gateway on a
// scratch configuration, agents enrolled and connected over WebSocket, and the saving of the
// finished workflow's history.

import { Client, Connection } from "@temporalio/client";
import type { Config } from "../../src/config.ts";
import { startService } from "../../src/service.ts";
import { enrolled, succeed, TestAgent } from "../gateway/support/agent.ts";
import { restClient } from "../support/http.ts";
import { createScratch } from "../support/scratch.ts";
import { saveHistory } from "./histories.ts";

export interface Recording {
  config: Config;
  rest: ReturnType<typeof restClient>;
  client: Client;
  gatewayUrl: string;
  /** A host name no other recording uses. */
  hostname: string;
}

/**
 * Runs `act` against a fresh service (it returns the id of the workflow it drove to its end), then
 * saves that workflow's history to `file` and tears everything down.
 */
export async function record(
  label: string,
  file: string,
  act: (r: Recording) => Promise<string>,
): Promise<void> {
  const scratch = await createScratch(label, { logLevel: "warn", loadDefaults: false });
  const { config } = scratch;
  const service = await startService(config, ["api", "worker", "gateway"], {});
  const client = new Client({
    connection: await Connection.connect({ address: config.temporal.address }),
  });
  const workflowId = await act({
    config,
    rest: restClient(() => service.apiUrl),
    client,
    gatewayUrl: service.gatewayUrl as string,
    hostname: `replay-${scratch.suffix.replace(/_/g, "-")}`,
  });
  saveHistory(config.temporal.address, workflowId, file);
  await service.close();
  await scratch.drop();
}

/** `record` with one enrolled agent connected that completes every command it gets (the gateway tests' TestAgent). */
export function recordWithAgent(
  label: string,
  file: string,
  act: (r: Recording & { agentId: string }) => Promise<string>,
): Promise<void> {
  return record(label, file, async (r) => {
    const token = await r.rest.post("/api/enrollment-tokens", {});
    const enrollment = await enrolled(r.gatewayUrl, token.body.token, r.hostname);
    const agent = await TestAgent.connect(r.gatewayUrl, enrollment.apiKey, r.hostname, {
      autoAnswer: succeed,
    });
    try {
      return await act({ ...r, agentId: enrollment.agentId });
    } finally {
      await agent.close();
    }
  });
}
