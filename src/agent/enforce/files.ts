// delete-file and quarantine-file, and restoring a quarantined file (`mm agent --restore <path>`).
import { createHash, type Hash, randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { constants, createWriteStream } from "node:fs";
import {
  chmod,
  chown,
  type FileHandle,
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readFile,
  rename,
  rm,
  rmdir,
  unlink,
  utimes,
} from "node:fs/promises";
import { basename, dirname, isAbsolute, join, normalize } from "node:path";
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

/**
 * Directories whose files no command may delete or quarantine: removing a system file is an outage
 * (or a way to disable defences), whatever an alert says. "/" covers the files directly in it.
 */
export const SYSTEM_PATHS: readonly string[] = [
  "/",
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/proc",
  "/run",
  "/sbin",
  "/sys",
  "/usr",
];

export interface FileActionOptions {
  /** The content the file must have (hex); the action is refused otherwise. */
  sha256?: string;
  /** Directories (besides none by default) whose files are refused, e.g. SYSTEM_PATHS. */
  protectedPaths?: readonly string[];
  /** Runs between checking the file and acting on it: lets a test swap the file at that moment. */
  beforeAct?: () => Promise<void>;
}

function refuseProtected(path: string, protectedPaths: readonly string[]) {
  for (const dir of protectedPaths) {
    const covered =
      dir === "/" ? dirname(path) === "/" : path === dir || path.startsWith(`${dir}/`);
    if (covered)
      throw new Error(`${path} is under the protected path ${dir}; refusing to touch it`);
  }
}

/**
 * Checks every component of the path with lstat (no symlink anywhere: a symlinked directory would
 * redirect the action to a file the command never named) and opens the file without following a
 * link. Returns the open file, its content to be read through the handle, never the path again.
 */
async function openRegularFile(
  path: string,
  protectedPaths: readonly string[],
): Promise<{ handle: FileHandle; stat: Stats }> {
  if (!isAbsolute(path)) throw new Error(`path must be absolute: ${JSON.stringify(path)}`);
  if (normalize(path) !== path || path.endsWith("/")) {
    throw new Error(`path must be normalized (no ".", ".." or "//"): ${JSON.stringify(path)}`);
  }
  refuseProtected(path, protectedPaths);
  let checked = "";
  let last: Stats | undefined;
  for (const name of path.slice(1).split("/")) {
    checked += `/${name}`;
    last = await lstat(checked).catch((error: NodeJS.ErrnoException) => {
      throw error.code === "ENOENT" ? new Error(`no such file: ${path}`) : error;
    });
    if (last.isSymbolicLink()) {
      throw new Error(`${checked} is a symbolic link; refusing to follow it to act on ${path}`);
    }
    if (checked !== path && !last.isDirectory()) throw new Error(`${checked} is not a directory`);
  }
  if (!last?.isFile()) throw new Error(`${path} is not a regular file`);
  let handle: FileHandle;
  try {
    // O_NOFOLLOW: a symlink planted since the check is not followed; O_NONBLOCK: nor does a FIFO
    // planted there hang the agent.
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`no such file: ${path}`);
    if (code === "ELOOP") throw new Error(`${path} is a symbolic link; refusing to follow it`);
    throw error;
  }
  const stat = await handle.stat();
  if (!stat.isFile() || !sameInode(stat, last)) {
    await handle.close();
    throw new Error(`${path} changed while it was checked; not touched`);
  }
  return { handle, stat };
}

const sameInode = (a: Stats, b: Stats) => a.dev === b.dev && a.ino === b.ino;

/**
 * Acts on exactly the inode that was checked and hashed: the path is renamed into a private
 * staging directory beside it (same filesystem), and the staged entry must be that inode. A file
 * swapped in at the path since (or a directory swapped for a symlink) is put back untouched.
 * Whatever `act` does not remove is put back too when it fails.
 */
async function onSameInode(
  path: string,
  checked: Stats,
  action: string,
  act: (staged: string) => Promise<void>,
): Promise<void> {
  const staging = await mkdtemp(join(dirname(path), ".mm-agent-staging-"));
  const staged = join(staging, "file");
  try {
    await rename(path, staged);
    try {
      if (!sameInode(await lstat(staged), checked)) {
        throw new Error(
          `${path} was replaced between its check and the action; put back, not ${action}`,
        );
      }
      await act(staged);
    } catch (error) {
      // link() never overwrites: a file that appeared at the path meanwhile is kept, and the
      // staged one stays in the staging directory, named in the error.
      await link(staged, path).then(
        () => unlink(staged),
        (linkError: Error) => {
          throw new Error(
            `${(error as Error).message}; could not put back ${staged}: ${linkError.message}`,
          );
        },
      );
      throw error;
    }
  } finally {
    await rmdir(staging).catch(() => undefined); // left (not empty) only when put-back failed
  }
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
export async function deleteFile(path: string, options: FileActionOptions = {}): Promise<string> {
  const { handle, stat } = await openRegularFile(path, options.protectedPaths ?? []);
  const hash = createHash("sha256");
  try {
    await pipeline(handle.createReadStream({ autoClose: false }), hash);
  } finally {
    await handle.close();
  }
  const sha256 = hash.digest("hex");
  refuseMismatch(path, sha256, options.sha256, "deleted");
  await options.beforeAct?.();
  await onSameInode(path, stat, "deleted", (staged) => unlink(staged));
  return sha256;
}

/**
 * Moves a file into the quarantine directory as `<sha256>-<ms>.quarantine` (encoded) beside a
 * `.json` QuarantineRecord, then removes the original. The copy is durable before the original goes.
 */
export async function quarantineFile(
  path: string,
  quarantineDir: string,
  options: FileActionOptions = {},
): Promise<{ quarantine_path: string; sha256: string }> {
  await mkdir(quarantineDir, { recursive: true, mode: 0o700 });
  const { handle, stat } = await openRegularFile(path, options.protectedPaths ?? []);
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
  const base = join(quarantineDir, `${sha256}-${Date.now()}`);
  try {
    refuseMismatch(path, sha256, options.sha256, "quarantined");
    await fsyncPath(temp);
    await options.beforeAct?.();
    await onSameInode(path, stat, "quarantined", async (staged) => {
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
      await unlink(staged);
    });
  } catch (error) {
    await Promise.all(
      [temp, `${base}.json`, `${base}.quarantine`].map((file) => rm(file, { force: true })),
    );
    throw error;
  }
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
