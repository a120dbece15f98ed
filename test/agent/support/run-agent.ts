// The agent as a process (`node --import tsx run-agent.ts <mm agent flags>`), for tests that run it
// inside a network namespace and kill it.
import { main } from "../../../src/agent/cli.ts";

await main(process.argv.slice(2));
