import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  CommandDetails,
  parseAgentMessage,
  parseGatewayMessage,
} from "../../src/protocol/messages.ts";
import { generateSchemas, PROTOCOL_DOCS_DIR } from "../../src/protocol/write-schemas.ts";
import { SHARED } from "../support/fixtures.ts";

const FIXTURES = join(SHARED, "fixtures/agent-protocol");

async function listSchemas(dir: string, prefix = ""): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((e) =>
      e.isDirectory()
        ? listSchemas(join(dir, e.name), `${prefix}${e.name}/`)
        : Promise.resolve(e.name.endsWith(".schema.json") ? [`${prefix}${e.name}`] : []),
    ),
  );
  return nested.flat().sort();
}

describe("protocol", () => {
  it("committed JSON Schemas equal freshly generated ones", async () => {
    const generated = generateSchemas();
    expect(await listSchemas(PROTOCOL_DOCS_DIR)).toEqual(Object.keys(generated).sort());
    for (const [path, schema] of Object.entries(generated)) {
      const committed = JSON.parse(await readFile(join(PROTOCOL_DOCS_DIR, path), "utf8"));
      expect(committed, path).toEqual(schema);
    }
  });

  it("the seed fixtures validate, each as the message it is", async () => {
    const expected: Record<string, [side: "agent" | "gateway", key: string]> = {
      "agent-ack.json": ["agent", "command_id"],
      "agent-alert.json": ["agent", "alert"],
      "agent-completion.json": ["agent", "success"],
      "agent-command-isolate-host.json": ["gateway", "command"],
      "portal-update-rules.json": ["gateway", "operation"],
    };
    const files = (await readdir(FIXTURES)).filter((f) => f.endsWith(".json")).sort();
    expect(files).toEqual(Object.keys(expected).sort());
    for (const file of files) {
      const text = await readFile(join(FIXTURES, file), "utf8");
      const [side, key] = expected[file] as [string, string];
      const parsed = side === "agent" ? parseAgentMessage(text) : parseGatewayMessage(text);
      expect(parsed, file).toMatchObject({ ok: true });
      if (parsed.ok) {
        expect(parsed.message, file).toHaveProperty(key);
        expect(parsed.message, file).toEqual(JSON.parse(text)); // nothing dropped or added
      }
    }
    const command = JSON.parse(
      await readFile(join(FIXTURES, "agent-command-isolate-host.json"), "utf8"),
    );
    expect(CommandDetails["isolate-host"].parse(command.details)).toEqual(command.details);
  });

  it("kill-process needs a process_name or an executable_sha256 besides the pid", () => {
    const kill = CommandDetails["kill-process"];
    expect(kill.safeParse({ pid: 42 }).error?.issues).toEqual([
      expect.objectContaining({
        path: ["process_name"],
        message: "required unless executable_sha256 is given",
      }),
    ]);
    expect(kill.safeParse({ pid: 42, process_name: "ncat" }).success).toBe(true);
    expect(kill.safeParse({ pid: 42, executable_sha256: "a".repeat(64) }).success).toBe(true);
  });

  it("reports invalid JSON, unknown and invalid messages with the offending path, never throwing", () => {
    expect(parseAgentMessage("{nope")).toMatchObject({ ok: false, code: "invalid_json" });
    expect(parseAgentMessage("[1]")).toMatchObject({ ok: false, code: "invalid_message" });
    expect(parseAgentMessage('{"type":"bogus"}')).toMatchObject({
      ok: false,
      code: "unknown_message",
    });
    expect(parseGatewayMessage('{"operation":"drop_rules"}')).toMatchObject({
      ok: false,
      code: "unknown_message",
    });
    expect(parseGatewayMessage("{}")).toMatchObject({ ok: false, code: "unknown_message" });

    const bad = parseGatewayMessage(
      '{"command":"kill-process","priority":"urgent","id":"c1","details":{}}',
    );
    expect(bad).toMatchObject({ ok: false, code: "invalid_message" });
    expect(!bad.ok && bad.message).toMatch(/^command: priority: /);

    // status and success must agree
    const contradiction = parseAgentMessage(
      JSON.stringify({
        command_id: "c1",
        status: "completed",
        success: false,
        message: "",
        details: {},
        timestamp: "2025-03-22T15:30:45.360Z",
      }),
    );
    expect(contradiction).toMatchObject({ ok: false, code: "invalid_message" });
    expect(!contradiction.ok && contradiction.message).toMatch(/success/);

    const hello = parseAgentMessage(JSON.stringify({ type: "hello", hostname: "h" }));
    expect(!hello.ok && hello.message).toMatch(/^hello: os: /);
  });

  it("passes unknown command names and extra keys through (the agent answers them)", () => {
    const parsed = parseGatewayMessage(
      JSON.stringify({
        command: "set-registry-value",
        priority: "low",
        id: "c2",
        details: { key: "HKLM" },
      }),
    );
    expect(parsed).toMatchObject({ ok: true, message: { command: "set-registry-value" } });
    // details merged from mitigation params/args carry extra keys: ignored, not rejected
    const details = CommandDetails["kill-process"].parse({
      pid: "42",
      process_name: "ncat",
      path: "/x",
    });
    expect(details).toEqual({ pid: "42", process_name: "ncat" });
    expect(CommandDetails["block-ip"].safeParse({ ip: "fd00::1" }).success).toBe(true);
    expect(CommandDetails["block-ip"].safeParse({ ip: "10.0.0.300" }).success).toBe(false);
    expect(CommandDetails["kill-process"].safeParse({ pid: "12a" }).success).toBe(false);
  });
});
