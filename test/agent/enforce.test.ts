// Enforcement on the real system: processes, files and rule files (firewall: isolation.test.ts).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { realpathSync } from "node:fs";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  deleteFile,
  type QuarantineRecord,
  quarantineFile,
  restoreFile,
  SYSTEM_PATHS,
} from "../../src/agent/enforce/files.ts";
import { killProcess } from "../../src/agent/enforce/process.ts";
import { applyRuleSet, recoverRulesFolder, ruleChecksum } from "../../src/agent/enforce/rules.ts";

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mm-enforce-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function exited(child: ChildProcess) {
  return new Promise<NodeJS.Signals | null>((resolve) =>
    child.once("exit", (_code, signal) => resolve(signal)),
  );
}

describe("kill-process", () => {
  it("kills a running process, checking its name", async () => {
    const child = spawn("sleep", ["300"]);
    const exit = exited(child);
    await expect(killProcess(child.pid as number, { name: "sleep" })).resolves.toBeUndefined();
    expect(await exit).toBe("SIGKILL");
  });

  it("kills by the sha256 of the executable, and refuses another executable", async () => {
    const sleepSha = sha256(
      await readFile(realpathSync(execFileSync("which", ["sleep"]).toString().trim())),
    );
    const child = spawn("sleep", ["300"]);
    try {
      await expect(
        killProcess(child.pid as number, { executableSha256: "0".repeat(64) }),
      ).rejects.toThrow(/runs an executable with sha256 [0-9a-f]{64}, not 0{64}; not killed/);
      expect(child.exitCode).toBeNull();
      const exit = exited(child);
      await killProcess(child.pid as number, { executableSha256: sleepSha.toUpperCase() });
      expect(await exit).toBe("SIGKILL");
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("refuses pid 1, the agent itself, a bare pid and a name mismatch", async () => {
    await expect(killProcess(1, { name: "systemd" })).rejects.toThrow(/refusing to kill pid 1/);
    await expect(killProcess(process.pid, { name: "node" })).rejects.toThrow(/agent itself/);
    const child = spawn("sleep", ["300"]);
    try {
      await expect(killProcess(child.pid as number, {})).rejects.toThrow(
        /without its process_name or executable_sha256/,
      );
      await expect(killProcess(child.pid as number, { name: "ncat" })).rejects.toThrow(
        /is "sleep", not "ncat"; not killed/,
      );
      expect(child.exitCode).toBeNull();
      expect(child.signalCode).toBeNull();
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("fails for a pid that does not exist", async () => {
    const child = spawn("true");
    await exited(child);
    await expect(killProcess(child.pid as number, { name: "true" })).rejects.toThrow(
      /no process with pid/,
    );
  });
});

describe("delete-file", () => {
  it("refuses on a sha256 mismatch and deletes on a match", async () => {
    const path = join(dir, "dropper.py");
    await writeFile(path, "print('zerologon')\n");
    await expect(deleteFile(path, { sha256: "0".repeat(64) })).rejects.toThrow(
      /sha256 mismatch.*not deleted/,
    );
    expect((await stat(path)).isFile()).toBe(true);
    await expect(
      deleteFile(path, { sha256: sha256("print('zerologon')\n").toUpperCase() }),
    ).resolves.toBe(sha256("print('zerologon')\n"));
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
    expect((await readdir(dir)).filter((name) => name.startsWith(".mm-agent-staging"))).toEqual([]);
  });

  it("refuses a path through a symlinked directory, leaving the file it leads to", async () => {
    const real = join(dir, "real-dir");
    await mkdir(real);
    await writeFile(join(real, "passwd"), "root:x:0:0");
    await symlink(real, join(dir, "innocent-dir"));
    for (const act of [
      () => deleteFile(join(dir, "innocent-dir", "passwd")),
      () => quarantineFile(join(dir, "innocent-dir", "passwd"), join(dir, "q-link")),
    ]) {
      await expect(act()).rejects.toThrow(/innocent-dir is a symbolic link; refusing to follow it/);
    }
    expect(await readFile(join(real, "passwd"), "utf8")).toBe("root:x:0:0");
  });

  it("acts on the file it hashed: one swapped in meanwhile is put back untouched", async () => {
    const path = join(dir, "payload.bin");
    const decoy = join(dir, "decoy.bin");
    await writeFile(path, "malware");
    await writeFile(decoy, "someone's thesis");
    const swap = () => rename(decoy, path); // the checked file is gone, another took its name
    await expect(deleteFile(path, { sha256: sha256("malware"), beforeAct: swap })).rejects.toThrow(
      /was replaced between its check and the action; put back, not deleted/,
    );
    expect(await readFile(path, "utf8")).toBe("someone's thesis");

    await writeFile(decoy, "another thesis");
    const quarantine = join(dir, "q-swap");
    await expect(quarantineFile(path, quarantine, { beforeAct: swap })).rejects.toThrow(
      /was replaced.*not quarantined/,
    );
    expect(await readFile(path, "utf8")).toBe("another thesis");
    expect(await readdir(quarantine)).toEqual([]);
    expect((await readdir(dir)).filter((name) => name.startsWith(".mm-agent-staging"))).toEqual([]);
  });

  it("refuses protected system paths and unnormalized paths", async () => {
    const protectedPaths = [...SYSTEM_PATHS, join(dir, "state")];
    await mkdir(join(dir, "state"));
    await writeFile(join(dir, "state", "identity.json"), "{}");
    for (const path of [
      "/etc/passwd",
      "/usr/bin/env",
      "/vmlinuz",
      join(dir, "state", "identity.json"),
    ]) {
      await expect(deleteFile(path, { protectedPaths }), path).rejects.toThrow(
        /is under the protected path .*; refusing to touch it/,
      );
    }
    expect(await readFile(join(dir, "state", "identity.json"), "utf8")).toBe("{}");
    await expect(deleteFile(`${dir}/state/../state/identity.json`)).rejects.toThrow(
      /must be normalized/,
    );
  });

  it("refuses relative paths, directories, symlinks and missing files", async () => {
    await expect(deleteFile("relative.txt")).rejects.toThrow(/must be absolute/);
    await expect(deleteFile(dir)).rejects.toThrow(/not a regular file/);
    const target = join(dir, "target.txt");
    await writeFile(target, "keep");
    await symlink(target, join(dir, "link"));
    await expect(deleteFile(join(dir, "link"))).rejects.toThrow(/symbolic link/);
    expect(await readFile(target, "utf8")).toBe("keep");
    await expect(deleteFile(join(dir, "absent"))).rejects.toThrow(/no such file/);
  });
});

describe("quarantine-file", () => {
  it("refuses on a sha256 mismatch, leaving everything as it was", async () => {
    const path = join(dir, "mismatch.bin");
    await writeFile(path, "payload");
    const quarantine = join(dir, "q-mismatch");
    await expect(quarantineFile(path, quarantine, { sha256: "f".repeat(64) })).rejects.toThrow(
      /sha256 mismatch.*not quarantined/,
    );
    expect(await readFile(path, "utf8")).toBe("payload");
    expect(await readdir(quarantine)).toEqual([]);
  });

  it("keeps an unreadable copy with what is needed to restore it, and restores it", async () => {
    const path = join(dir, "zerologon.py");
    const content = Buffer.from("#!/usr/bin/env python3\nimport zerologon\n".repeat(1000));
    await writeFile(path, content);
    await chmod(path, 0o751);
    const mtime = new Date("2024-01-02T03:04:05Z");
    await utimes(path, mtime, mtime);
    const quarantine = join(dir, "q");

    const result = await quarantineFile(path, quarantine, { sha256: sha256(content) });
    expect(result.sha256).toBe(sha256(content));
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
    expect((await stat(quarantine)).mode & 0o777).toBe(0o700);
    const copy = await readFile(result.quarantine_path);
    expect(copy.length).toBe(content.length);
    expect(copy.includes("zerologon")).toBe(false); // inert: not the original bytes
    expect((await stat(result.quarantine_path)).mode & 0o777).toBe(0o400);
    const record = JSON.parse(
      await readFile(result.quarantine_path.replace(/\.quarantine$/, ".json"), "utf8"),
    ) as QuarantineRecord;
    expect(record).toMatchObject({
      original_path: path,
      sha256: sha256(content),
      size: content.length,
      mode: 0o751,
    });

    expect(await restoreFile(result.quarantine_path)).toBe(path);
    expect(sha256(await readFile(path))).toBe(sha256(content));
    const restored = await stat(path);
    expect(restored.mode & 0o777).toBe(0o751);
    expect(restored.mtime.getTime()).toBe(mtime.getTime());
    expect(await readdir(quarantine)).toEqual([]);
  });

  it("never restores over an existing file", async () => {
    const path = join(dir, "again.txt");
    await writeFile(path, "one");
    const quarantine = join(dir, "q2");
    const { quarantine_path } = await quarantineFile(path, quarantine);
    await writeFile(path, "two");
    await expect(restoreFile(quarantine_path)).rejects.toThrow(/exists; not overwriting/);
    expect(await readFile(path, "utf8")).toBe("two");
  });
});

describe("update_rules", () => {
  const content =
    "name: Suspicious vaultcmd\nid: 1\ncondition: spawn_process and ps.name = 'vaultcmd.exe'\n";
  const file = (name: string, text: string, version = 1) => ({
    name,
    content: text,
    version,
    checksum: ruleChecksum(text),
  });
  const frame = (rules: ReturnType<typeof file>[], complete?: boolean) => ({
    operation: "update_rules" as const,
    rules,
    ...(complete !== undefined && { complete }),
  });
  const ruleFiles = async (rulesDir: string) =>
    (await readdir(rulesDir)).filter((n) => n.endsWith(".yml")).sort();

  it("switches the rules folder to a new set in one step, keeping the folder a link", async () => {
    const rulesDir = join(dir, "rules");
    const first = await applyRuleSet(
      frame([file("credential_dumping_vaultcmd", content, 2)]),
      {},
      rulesDir,
    );
    expect(first.statuses).toEqual([
      {
        name: "credential_dumping_vaultcmd",
        version: 2,
        checksum: ruleChecksum(content),
        status: "applied",
      },
    ]);
    expect(first.rules).toEqual({
      credential_dumping_vaultcmd: { version: 2, checksum: ruleChecksum(content) },
    });
    expect((await lstat(rulesDir)).isSymbolicLink()).toBe(true);
    expect(await readFile(join(rulesDir, "credential_dumping_vaultcmd.yml"), "utf8")).toBe(content);
    // A partial frame adds to the set and replaces what it names; nothing temporary is left.
    const v3 = `${content}severity: high\n`;
    const second = await applyRuleSet(
      frame([file("credential_dumping_vaultcmd", v3, 3), file("other", content)]),
      first.rules ?? {},
      rulesDir,
    );
    expect(Object.keys(second.rules ?? {}).sort()).toEqual([
      "credential_dumping_vaultcmd",
      "other",
    ]);
    expect(await readdir(rulesDir)).toEqual(["credential_dumping_vaultcmd.yml", "other.yml"]);
    expect(await readFile(join(rulesDir, "credential_dumping_vaultcmd.yml"), "utf8")).toBe(v3);
    // Only the current folder and the one before it are kept.
    expect(await readdir(join(dir, ".rules.sets"))).toHaveLength(2);
  });

  it("a complete set removes the rules it does not name and keeps the macros folder", async () => {
    const rulesDir = join(dir, "rules-complete");
    // A plain folder as installed, with Fibratus's macros beside the rules.
    await mkdir(join(rulesDir, "macros"), { recursive: true });
    await writeFile(join(rulesDir, "macros", "macros.yml"), "- macro: m\n  expr: true\n");
    await writeFile(join(rulesDir, "old_rule.yml"), content);
    const kept = await applyRuleSet(frame([file("new_rule", content)], true), {}, rulesDir);
    expect(kept.rules).toEqual({ new_rule: { version: 1, checksum: ruleChecksum(content) } });
    expect(await ruleFiles(rulesDir)).toEqual(["new_rule.yml"]);
    expect(await readFile(join(rulesDir, "macros", "macros.yml"), "utf8")).toMatch(/macro: m/);
    expect((await lstat(rulesDir)).isSymbolicLink()).toBe(true);
  });

  it("applies nothing when one file fails: each bad file says why, the others that they were not applied", async () => {
    const rulesDir = join(dir, "rules-bad");
    const good = await applyRuleSet(frame([file("r0", content)]), {}, rulesDir);
    const notYaml = "rule x {\n  meta: [\n";
    const outcome = await applyRuleSet(
      frame(
        [
          file("r1", content),
          { ...file("r2", content), checksum: "sha256:8a7b3ab6..." },
          file("../evil", content),
          file("r3", notYaml),
        ],
        true,
      ),
      good.rules ?? {},
      rulesDir,
    );
    expect(outcome.rules).toBeNull();
    expect(outcome.error).toBe("3 of 4 rules failed verification; none applied");
    expect(outcome.statuses.map((s) => [s.name, s.status, s.error])).toEqual([
      ["r1", "failed", "not applied: r2 failed"],
      ["r2", "failed", expect.stringMatching(/checksum mismatch/)],
      ["../evil", "failed", expect.stringMatching(/unsafe rule name/)],
      ["r3", "failed", expect.stringMatching(/not valid YAML/)],
    ]);
    // The previous set is untouched: the complete frame removed nothing.
    expect(await ruleFiles(rulesDir)).toEqual(["r0.yml"]);
  });

  it("in simulation keeps the same books without touching the disk", async () => {
    const outcome = await applyRuleSet(
      frame([file("a", content)], true),
      { b: { version: 1, checksum: "sha256:x" } },
      null,
    );
    expect(outcome.rules).toEqual({ a: { version: 1, checksum: ruleChecksum(content) } });
  });

  it("a crash while the first plain folder was moved aside is undone on start", async () => {
    const rulesDir = join(dir, "rules-crash");
    await mkdir(join(dir, ".rules-crash.sets", "original"), { recursive: true });
    await writeFile(join(dir, ".rules-crash.sets", "original", "kept.yml"), content);
    expect(await recoverRulesFolder(rulesDir)).toBe(true);
    expect(await readdir(rulesDir)).toEqual(["kept.yml"]);
    expect(await recoverRulesFolder(rulesDir)).toBe(false);
  });
});
