// Writes docs/protocol/**/*.schema.json from the zod schemas, so the documented protocol is the
// one the code parses. Run: npx tsx src/protocol/write-schemas.ts (a test fails when they drift).
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";
import {
  Ack,
  AGENT_COMMANDS,
  AlertAck,
  AlertForward,
  Command,
  CommandDetails,
  CommandResults,
  Completion,
  ErrorFrame,
  Heartbeat,
  Hello,
  RulesStatus,
  UpdateRules,
  Welcome,
} from "./messages.ts";

export const PROTOCOL_DOCS_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../docs/protocol",
);

const messages: Record<string, z.ZodType> = {
  command: Command,
  "update-rules": UpdateRules,
  welcome: Welcome,
  error: ErrorFrame,
  "alert-ack": AlertAck,
  ack: Ack,
  completion: Completion,
  alert: AlertForward,
  hello: Hello,
  heartbeat: Heartbeat,
  "rules-status": RulesStatus,
};

/** Every schema, keyed by its file path under docs/protocol. */
export function generateSchemas(): Record<string, object> {
  const files: Record<string, object> = {};
  // "input" describes what a receiver accepts: defaulted fields are optional, extra keys allowed.
  const add = (path: string, title: string, schema: z.ZodType) => {
    files[path] = { title, ...z.toJSONSchema(schema, { io: "input" }) };
  };
  for (const [name, schema] of Object.entries(messages)) add(`${name}.schema.json`, name, schema);
  for (const command of AGENT_COMMANDS) {
    add(`details/${command}.schema.json`, `${command} details`, CommandDetails[command]);
    add(`results/${command}.schema.json`, `${command} result details`, CommandResults[command]);
  }
  return files;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const files = generateSchemas();
  for (const [path, schema] of Object.entries(files)) {
    const target = join(PROTOCOL_DOCS_DIR, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, JSON.stringify(schema));
  }
  // Laid out by the project's formatter, so that `biome check` passes on the generated files.
  execFileSync(
    join(PROTOCOL_DOCS_DIR, "../../node_modules/.bin/biome"),
    ["format", "--write", PROTOCOL_DOCS_DIR],
    {
      stdio: "ignore",
    },
  );
  console.log(`wrote ${Object.keys(files).length} schemas to ${PROTOCOL_DOCS_DIR}`);
}
