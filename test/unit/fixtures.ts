// The seed's JSON shapes, read from the shared fixtures beside the repository.
import { readFileSync } from "node:fs";

export function fixture(name: string): Record<string, unknown> {
  return JSON.parse(
    readFileSync(new URL(`../../../shared/fixtures/${name}`, import.meta.url), "utf8"),
  );
}

export const wazuh = {
  ncat: () => fixture("wazuh/100002-ncat-connection.json"),
  execPermission: () => fixture("wazuh/100003-exec-permission-added.json"),
  executableFile: () => fixture("wazuh/100004-executable-file-added.json"),
  flowProcessor: () => fixture("wazuh/100100-flow-processor.json"),
};
