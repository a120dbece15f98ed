// delete-file and quarantine-file, and restoring a quarantined file (`mm agent --restore <path>`).
import { createHash, type Hash, randomBytes } from "node:crypto";
import { constants, createWriteStream } from "node:fs";
import {
  chmod,
  chown,
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  unlink,
  utimes,
} from "node:fs/promises";
import { basename, dirname, isAbsolute, join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fsyncPath, writeAtomic } from "../state.ts";

// Quarantined bytes are XOR-ed so the copy is inert: it cannot be executed, loaded or matched by a
// scanner as the original. It is not meant to be secret: the quarantine directory is root-only.
const QUARANTINE_KEY = 0xa5;

/** Everything needed to put a quarantined file back where and as it was. */
export interface QuarantineRecord {
  original_path: string;
  sha256: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime_ms: number;
  quarantined_at: string;
  encoding: "xor-a5";
}

async function openRegularFile(path: string): Promise<FileHandle> {
  if (!isAbsolute(path)) throw new Error(`path must be absolute: ${JSON.stringify(path)}`);
  let handle: FileHandle;
  try {
    // O_NOFOLLOW: a symlink planted at the path must not redirect the action to another file.
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`no such file: ${path}`);
    if (code === "ELOOP") throw new Error(`${path} is a symbolic link; refusing to follow it`);
    throw error;
  }
  if (!(await handle.stat()).isFile()) {
    await handle.close();
    throw new Error(`${path} is not a regular file`);
  }
  return handle;
}

function refuseMismatch(
  path: string,
  actual: string,
  expected: string | undefined,
  action: string,
) {
  if (expected !== undefined && actual !== expected.toLowerCase()) {
    throw new Error(`sha256 mismatch: ${path} has ${actual}, expected ${expected}; not ${action}`);
  }
}

function xorCodec(plain: Hash, plainIsInput: boolean) {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const out = Buffer.allocUnsafe(chunk.length);
      for (let i = 0; i < chunk.length; i++) out[i] = (chunk[i] as number) ^ QUARANTINE_KEY;
      plain.update(plainIsInput ? chunk : out);
      done(null, out);
    },
  });
}

/** Deletes a regular file, after checking its content when a sha256 is given; returns its sha256. */
export async function deleteFile(path: string, expectedSha256?: string): Promise<string> {
  const handle = await openRegularFile(path);
  const hash = createHash("sha256");
  try {
    await pipeline(handle.createReadStream({ autoClose: false }), hash);
  } finally {
    await handle.close();
  }
  const sha256 = hash.digest("hex");
  refuseMismatch(path, sha256, expectedSha256, "deleted");
  await unlink(path);
  return sha256;
}

/**
 * Moves a file into the quarantine directory as `<sha256>-<ms>.quarantine` (encoded) beside a
 * `.json` QuarantineRecord, then removes the original. The copy is durable before the original goes.
 */
export async function quarantineFile(
  path: string,
  quarantineDir: string,
  expectedSha256?: string,
): Promise<{ quarantine_path: string; sha256: string }> {
  await mkdir(quarantineDir, { recursive: true, mode: 0o700 });
  const handle = await openRegularFile(path);
  const stat = await handle.stat();
  const temp = join(quarantineDir, `.incoming-${randomBytes(6).toString("hex")}`);
  const hash = createHash("sha256");
  try {
    await pipeline(
      handle.createReadStream({ autoClose: false }),
      xorCodec(hash, true),
      createWriteStream(temp, { flags: "wx", mode: 0o400 }),
    );
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  } finally {
    await handle.close();
  }
  const sha256 = hash.digest("hex");
  try {
    refuseMismatch(path, sha256, expectedSha256, "quarantined");
    await fsyncPath(temp);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const base = join(quarantineDir, `${sha256}-${Date.now()}`);
  const record: QuarantineRecord = {
    original_path: path,
    sha256,
    size: stat.size,
    mode: stat.mode & 0o7777,
    uid: stat.uid,
    gid: stat.gid,
    mtime_ms: stat.mtimeMs,
    quarantined_at: new Date().toISOString(),
    encoding: "xor-a5",
  };
  await writeAtomic(`${base}.json`, JSON.stringify(record, null, 2), 0o600);
  // Renamed last: a .quarantine file always has its record beside it.
  await rename(temp, `${base}.quarantine`);
  await fsyncPath(quarantineDir);
  await unlink(path);
  return { quarantine_path: `${base}.quarantine`, sha256 };
}

/** Puts a quarantined file back (content, mode, owner, mtime); never overwrites. Returns its path. */
export async function restoreFile(quarantinePath: string): Promise<string> {
  const recordPath = quarantinePath.replace(/\.quarantine$/, ".json");
  const record = JSON.parse(await readFile(recordPath, "utf8")) as QuarantineRecord;
  const target = record.original_path;
  if (await lstat(target).catch(() => null))
    throw new Error(`${target} exists; not overwriting it`);
  const temp = join(
    dirname(target),
    `.${basename(target)}.restore-${randomBytes(6).toString("hex")}`,
  );
  const hash = createHash("sha256");
  const source = await open(quarantinePath, "r");
  try {
    await pipeline(
      source.createReadStream({ autoClose: false }),
      xorCodec(hash, false),
      createWriteStream(temp, { flags: "wx", mode: 0o600 }),
    );
    const sha256 = hash.digest("hex");
    if (sha256 !== record.sha256) throw new Error(`quarantined copy is damaged: sha256 ${sha256}`);
    await chmod(temp, record.mode);
    // Only root may give a file away; an unprivileged restore keeps the caller as owner.
    await chown(temp, record.uid, record.gid).catch(() => undefined);
    await utimes(temp, new Date(), new Date(record.mtime_ms));
    await fsyncPath(temp);
    // link() fails if the target appeared meanwhile, where rename() would overwrite it.
    await link(temp, target);
  } finally {
    await source.close();
    await rm(temp, { force: true });
  }
  await fsyncPath(dirname(target));
  await rm(quarantinePath);
  await rm(recordPath);
  return target;
}
