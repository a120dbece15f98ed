// POST /api/rule with a rules folder as a tar, tar.gz or zip: the real Fibratus catalogue (its
// macros file included) in one request, archives built here from the corpus folder; bombs,
// traversal, links, devices and too many entries refused naming the entry, with nothing stored.

import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { corpusFolder, type Entry, tarOf, zipOf } from "../support/archives.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { BASE_RULE, corpusFile, corpusRules } from "../support/fibratus-rules.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";

let ctx: TestContext;
let service: Service;
const rest = restClient(() => service.apiUrl);
const post = (body: Buffer, type: string) =>
  rest.call("POST", "/api/rule", body, { "content-type": type });
const TAR = "application/x-tar";
const rule = (name: string) => ({ name, data: corpusFile(BASE_RULE) });

beforeAll(async () => {
  ctx = await createTestContext("rules_archive", {
    rules: {
      archive: {
        maxArchiveBytes: 600_000, // the catalogue's tar is about 400 kB
        maxEntries: 200,
        maxFileBytes: 65_536,
        maxTotalBytes: 1_048_576,
      },
    },
  });
  service = await ctx.start({ agents: recordingAgents().gateway, roles: ["api"] });
});
afterAll(() => ctx?.cleanup());

const stored = async () => (await rest.get("/api/rule?limit=1")).body.total;

describe("hostile archives", () => {
  // Each refused with the entry named; none stores anything.
  const cases: [string, Buffer, string, string, RegExp][] = [
    [
      "a zip bomb (32 MiB of zeros in a few KiB)",
      zipOf([rule("a.yml"), { name: "bomb.yml", data: Buffer.alloc(32 * 1024 * 1024) }]),
      "application/zip",
      "bomb.yml",
      /file larger than 65536 bytes/,
    ],
    [
      "a gzip bomb",
      gzipSync(tarOf([{ name: "bomb.yml", data: Buffer.alloc(32 * 1024 * 1024) }])),
      "application/gzip",
      "(body)",
      /uncompressed archive larger than \d+ bytes/,
    ],
    [
      "a path leaving the folder",
      tarOf([rule("ok.yml"), rule("../../etc/fibratus/evil.yml")]),
      TAR,
      "../../etc/fibratus/evil.yml",
      /path leaving the folder/,
    ],
    [
      "an absolute path",
      zipOf([rule("/etc/evil.yml")]),
      "application/zip",
      "/etc/evil.yml",
      /absolute path refused/,
    ],
    [
      "a symbolic link",
      tarOf([rule("a.yml"), { name: "b.yml", type: "2", linkname: "/etc/shadow" }]),
      TAR,
      "b.yml",
      /links refused/,
    ],
    [
      "a symbolic link in a zip",
      zipOf([{ name: "b.yml", data: "/etc/shadow", mode: 0o120777 }]),
      "application/zip",
      "b.yml",
      /links refused/,
    ],
    ["a device", tarOf([{ name: "tty.yml", type: "3" }]), TAR, "tty.yml", /only files/],
    [
      "too many entries",
      tarOf(Array.from({ length: 201 }, (_, i) => ({ name: `r${i}.txt`, data: "x" }))),
      TAR,
      "r200.txt",
      /more than 200 entries/,
    ],
    [
      "a NUL in a file",
      tarOf([{ name: "nul.yml", data: "name: a\u0000b\n" }]),
      TAR,
      "nul.yml",
      /NUL/,
    ],
    ["not an archive", Buffer.from("name: x\n"), "application/zip", "(body)", /not a zip/],
  ];
  for (const [what, body, type, field, message] of cases) {
    it(`refuses ${what}`, async () => {
      const res = await post(body, type);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.errors).toEqual([{ field, message: expect.stringMatching(message) }]);
      expect(await stored()).toBe(0);
    });
  }

  it("refuses an archive over MM_RULE_ARCHIVE_MAX_BYTES with 413", async () => {
    const res = await post(Buffer.alloc(600_001), TAR);
    expect(res.status).toBe(413);
    expect(res.body.error).toBe("archive over 600000 bytes (MM_RULE_ARCHIVE_MAX_BYTES)");
  });

  it("names the file and the line of an invalid rule, storing none of the archive", async () => {
    const bad = corpusFile(BASE_RULE).replace(/^version: .*$/m, "version: 1.0.x");
    const entries: Entry[] = [
      ...corpusFolder().filter((e) => e.name !== BASE_RULE),
      { name: `broken/${BASE_RULE}`, data: bad },
    ];
    const res = await post(tarOf(entries), TAR);
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      {
        field: `broken/${BASE_RULE}: version`,
        message: expect.stringMatching(/x\.y\.z.*\(line 3\)/),
      },
    ]);
    expect(await stored()).toBe(0);
  });
});

describe("the catalogue as a rules folder", () => {
  const count = corpusRules().length;

  it("stores every rule and the macros file from a tar", async () => {
    const res = await post(tarOf(corpusFolder()), TAR);
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(201);
    expect(res.body.rules).toHaveLength(count);
    expect(res.body.rules.every((r: { status: string }) => r.status === "created")).toBe(true);
    expect(res.body.macros).toMatchObject({ version: 1, status: "created" });
    expect(await stored()).toBe(count);
    const byTechnique = (await rest.get("/api/rule?technique=T1003&limit=500")).body;
    expect(byTechnique.total).toBeGreaterThan(10);
  });

  it("finds the same folder unchanged as tar.gz and as zip", async () => {
    for (const [body, type] of [
      [gzipSync(tarOf(corpusFolder())), "application/gzip"],
      [zipOf(corpusFolder()), "application/zip"],
    ] as const) {
      const res = await post(body, type);
      expect(res.status, type).toBe(201);
      expect(
        res.body.rules.every((r: { status: string }) => r.status === "unchanged"),
        type,
      ).toBe(true);
      expect(res.body.macros, type).toMatchObject({ version: 1, status: "unchanged" });
    }
  });
});
