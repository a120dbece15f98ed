// A rules folder uploaded in one request: a tar, a gzip-compressed tar or a zip of Fibratus rule
// files and the macros file beside them. Archives are hostile input: every bound is checked
// while reading, never trusted from a header (a zip's declared sizes can lie), so a bomb costs at
// most the limits' bytes. Links, devices and paths leaving the folder are refused with the entry
// named: this service only reads the files' text, but an archive holding them is not a rules
// folder, and saying so beats skipping them silently.
import { gunzipSync, inflateRawSync } from "node:zlib";
import type { FieldError } from "./model.ts";

export type ArchiveKind = "tar" | "gzip" | "zip";

export interface ArchiveLimits {
  maxEntries: number;
  /** All files' uncompressed bytes together. */
  maxTotalBytes: number;
  maxFileBytes: number;
}

export interface ArchiveFile {
  /** The entry's path inside the archive, e.g. "macros/macros.yml". */
  path: string;
  text: string;
}

export type ArchiveRead = { ok: true; files: ArchiveFile[] } | { ok: false; errors: FieldError[] };

class Refused extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

const TAR_BLOCK = 512;

/** The regular files of an archive, as UTF-8 text. Never throws. */
export function readRuleArchive(
  kind: ArchiveKind,
  bytes: Uint8Array,
  limits: ArchiveLimits,
): ArchiveRead {
  try {
    const files =
      kind === "zip"
        ? readZip(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), limits)
        : readTar(kind === "gzip" ? gunzip(bytes, limits) : Buffer.from(bytes), limits);
    return { ok: true, files };
  } catch (err) {
    if (err instanceof Refused)
      return { ok: false, errors: [{ field: err.field, message: err.message }] };
    return {
      ok: false,
      errors: [{ field: "(body)", message: `unreadable archive: ${(err as Error).message}` }],
    };
  }
}

function gunzip(bytes: Uint8Array, limits: ArchiveLimits): Buffer {
  // A tar holds its files plus a header (and padding) per entry and two closing blocks.
  const bound = limits.maxTotalBytes + (limits.maxEntries * 2 + 2) * TAR_BLOCK;
  try {
    return gunzipSync(bytes, { maxOutputLength: bound });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
      throw new Refused("(body)", `uncompressed archive larger than ${bound} bytes`);
    throw new Refused("(body)", `not gzip data: ${(err as Error).message}`);
  }
}

/** A path inside the folder: relative, no `..`, no drive letter; "./" and "/" runs normalised. */
function safePath(raw: string): string {
  const name = raw.replaceAll("\\", "/");
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name))
    throw new Refused(raw, "absolute path refused");
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new Refused(raw, "path leaving the folder (..) refused");
  if (!parts.length) throw new Refused(raw || "(entry)", "empty path refused");
  return parts.join("/");
}

const decoder = new TextDecoder("utf-8", { fatal: true });

function textOf(path: string, data: Uint8Array): string {
  let text: string;
  try {
    text = decoder.decode(data);
  } catch {
    throw new Refused(path, "not UTF-8 text");
  }
  if (text.includes("\u0000")) throw new Refused(path, "must not contain the NUL character");
  return text;
}

/** Counts entries and bytes against the limits as they are read. */
function budget(limits: ArchiveLimits) {
  let entries = 0;
  let total = 0;
  return {
    entry(path: string) {
      if (++entries > limits.maxEntries)
        throw new Refused(path, `more than ${limits.maxEntries} entries in the archive`);
    },
    bytes(path: string, size: number) {
      if (size > limits.maxFileBytes)
        throw new Refused(path, `file larger than ${limits.maxFileBytes} bytes`);
      total += size;
      if (total > limits.maxTotalBytes)
        throw new Refused(path, `files larger than ${limits.maxTotalBytes} bytes together`);
    },
  };
}

function tarString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? length : end).toString("utf8");
}

function tarNumber(block: Buffer, start: number, length: number, path: string): number {
  if ((block[start] ?? 0) & 0x80) throw new Refused(path, "base-256 size refused (too large)");
  const text = tarString(block, start, length).trim();
  if (!/^[0-7]*$/.test(text)) throw new Refused(path, "malformed tar header");
  return text ? Number.parseInt(text, 8) : 0;
}

/** POSIX ustar with pax and GNU long names (what tar, bsdtar and most libraries write). */
function readTar(tar: Buffer, limits: ArchiveLimits): ArchiveFile[] {
  const files: ArchiveFile[] = [];
  const count = budget(limits);
  let offset = 0;
  let longName: string | null = null;
  while (offset + TAR_BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + TAR_BLOCK);
    if (header.every((b) => b === 0)) return files; // the closing blocks
    const prefix = tarString(header, 345, 155);
    const name =
      longName ?? (prefix ? `${prefix}/${tarString(header, 0, 100)}` : tarString(header, 0, 100));
    longName = null;
    let sum = 8 * 0x20; // the checksum field counts as spaces
    for (let i = 0; i < TAR_BLOCK; i++) if (i < 148 || i >= 156) sum += header[i] ?? 0;
    if (sum !== tarNumber(header, 148, 8, name))
      throw new Refused(name || "(entry)", "tar header checksum mismatch");
    count.entry(name);
    const type = String.fromCharCode(header[156] ?? 0);
    const size = tarNumber(header, 124, 12, name);
    const start = offset + TAR_BLOCK;
    offset = start + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    if (start + size > tar.length) throw new Refused(name, "truncated archive");
    const data = tar.subarray(start, start + size);
    if (type === "x" || type === "L") {
      // Metadata of the next entry: only its path matters here.
      if (size > 64 * 1024) throw new Refused(name, "extended header too large");
      longName = type === "L" ? tarString(data, 0, size) : paxPath(data.toString("utf8"));
      continue;
    }
    if (type === "g" || type === "5") continue; // global metadata, directories
    if (type === "1" || type === "2") throw new Refused(name, "links refused");
    if (type !== "0" && type !== "\0" && type !== "7")
      throw new Refused(
        name,
        `entry type ${JSON.stringify(type)} refused (devices, fifos: only files)`,
      );
    const path = safePath(name);
    count.bytes(path, size);
    files.push({ path, text: textOf(path, data) });
  }
  throw new Refused("(body)", "truncated tar: no closing blocks");
}

function paxPath(records: string): string | null {
  for (const record of records.split("\n")) {
    const match = /^\d+ path=(.*)$/.exec(record);
    if (match) return match[1] ?? null;
  }
  return null;
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function readZip(zip: Buffer, limits: ArchiveLimits): ArchiveFile[] {
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Refused("(body)", "not a zip archive (no end of central directory)");
  const entries = zip.readUInt16LE(eocd + 10);
  if (entries === 0xffff) throw new Refused("(body)", "zip64 archives refused");
  if (entries > limits.maxEntries)
    throw new Refused("(body)", `more than ${limits.maxEntries} entries in the archive`);
  const count = budget(limits);
  const files: ArchiveFile[] = [];
  let at = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < entries; n++) {
    if (at + 46 > zip.length || zip.readUInt32LE(at) !== CENTRAL)
      throw new Refused("(body)", "malformed zip central directory");
    const flags = zip.readUInt16LE(at + 8);
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const madeBy = zip.readUInt16LE(at + 4) >> 8;
    const mode = zip.readUInt32LE(at + 38) >>> 16;
    const local = zip.readUInt32LE(at + 42);
    const name = zip.subarray(at + 46, at + 46 + nameLength).toString("utf8");
    at += 46 + nameLength + extraLength + commentLength;
    count.entry(name);
    if (name.endsWith("/")) continue; // a directory
    // Unix-made entries carry their file type: only regular files (links, devices refused).
    const fileType = mode & 0o170000;
    if (madeBy === 3 && fileType === 0o120000) throw new Refused(name, "links refused");
    if (madeBy === 3 && fileType !== 0 && fileType !== 0o100000)
      throw new Refused(name, "only regular files are accepted (devices, fifos refused)");
    const path = safePath(name);
    if (flags & 1) throw new Refused(path, "encrypted entries refused");
    if (compressed === 0xffffffff) throw new Refused(path, "zip64 entries refused");
    if (local + 30 > zip.length || zip.readUInt32LE(local) !== LOCAL)
      throw new Refused(path, "malformed zip local header");
    const dataStart = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    if (dataStart + compressed > zip.length) throw new Refused(path, "truncated archive");
    const raw = zip.subarray(dataStart, dataStart + compressed);
    let data: Buffer;
    if (method === 0) data = raw;
    else if (method === 8) {
      try {
        // The bound is the file limit, whatever the entry declares.
        data = inflateRawSync(raw, { maxOutputLength: limits.maxFileBytes });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
          throw new Refused(path, `file larger than ${limits.maxFileBytes} bytes`);
        throw new Refused(path, `cannot inflate: ${(err as Error).message}`);
      }
    } else throw new Refused(path, `compression method ${method} refused (stored or deflate only)`);
    count.bytes(path, data.length);
    files.push({ path, text: textOf(path, data) });
  }
  return files;
}
