// Tar and zip archives built at test time (the corpus is never copied into the project), including
// hostile entries no archiving tool would write: links, devices, `..` and absolute paths, bombs.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { crc32, deflateRawSync } from "node:zlib";
import { corpusDir } from "./fibratus-rules.ts";

export interface Entry {
  name: string;
  data?: Buffer | string;
  /** tar type flag: "0" file, "2" symlink, "3" character device, "5" directory. */
  type?: string;
  linkname?: string;
  /** zip: Unix mode (file type and permissions) of the entry. */
  mode?: number;
}

/** Every file of the corpus folder (rules, macros/macros.yml, NOTICE, the schema), by relative path. */
export function corpusFolder(dir = corpusDir, prefix = ""): Entry[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory()
        ? corpusFolder(path, `${prefix}${name}/`)
        : [{ name: `${prefix}${name}`, data: readFileSync(path) }];
    });
}

const bytes = (data: Buffer | string | undefined) =>
  typeof data === "string" ? Buffer.from(data) : (data ?? Buffer.alloc(0));

function octal(header: Buffer, offset: number, length: number, value: number) {
  header.write(`${value.toString(8).padStart(length - 1, "0")}\0`, offset, "ascii");
}

/** A POSIX ustar archive. */
export function tarOf(entries: Entry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = bytes(e.data);
    const header = Buffer.alloc(512);
    header.write(e.name, 0, 100, "utf8");
    octal(header, 100, 8, 0o644);
    octal(header, 108, 8, 0);
    octal(header, 116, 8, 0);
    octal(header, 124, 12, data.length);
    octal(header, 136, 12, 0);
    header.write(e.type ?? "0", 156, 1, "ascii");
    if (e.linkname) header.write(e.linkname, 157, 100, "utf8");
    header.write("ustar\u000000", 257, 8, "ascii");
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A zip archive, entries deflated unless `stored`. */
export function zipOf(entries: Entry[], { stored = false } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = bytes(e.data);
    const body = stored ? data : deflateRawSync(data);
    const name = Buffer.from(e.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(stored ? 0 : 8, 8);
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix: the mode below is meaningful
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(stored ? 0 : 8, 10);
    central.writeUInt32LE(crc32(data), 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((e.mode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
