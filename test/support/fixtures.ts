import { readFileSync } from "node:fs";
import path from "node:path";

/** The shared seed fixtures beside the project (../shared/fixtures); never copied into it. */
export const SHARED = path.resolve(import.meta.dirname, "../../../shared");

export function fixture<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(path.join(SHARED, "fixtures", name), "utf8")) as T;
}

type WazuhAlert = Record<string, unknown> & {
  id: string;
  agent: { name: string; id: string; ip?: string };
};

/** A seed Wazuh alert moved to `host` with a fresh id (or the given one), so tests never share state. */
export function wazuhAlert(
  name:
    | "100002-ncat-connection"
    | "100003-exec-permission-added"
    | "100004-executable-file-added"
    | "100100-flow-processor",
  host: string,
  id?: string,
): WazuhAlert {
  const alert = fixture<WazuhAlert>(`wazuh/${name}.json`);
  alert.agent = { ...alert.agent, name: host };
  alert.id = id ?? `${alert.id}-${host}`;
  return alert;
}

/** An attack flow of one node, reached by one technique: the least a mitigation needs to run. */
export function oneNodeFlow(identifier: string, technique: string) {
  return {
    identifier,
    name: identifier,
    nodes: [{ id: identifier, techniques: [technique] }],
    start: [identifier],
  };
}
