// Everything the agent must remember across restarts, in one directory (default /var/lib/mm-agent):
//   identity.json   agent id, api key and gateway (mode 0600: the key is a credential)
//   state.json      isolation, blocked IPs (with their expiries), deployed rules, alert position
//   ledger/<sha256(command id)>.json   one file per command id: what ran and what it answered
// Every file is written atomically (temp file, fsync, rename, fsync of the directory), so a crash
// or power loss leaves either the old or the new content, never a torn file.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Completion } from "../protocol/messages.ts";

export interface Identity {
  agent_id: string;
  api_key: string;
  gateway: string;
  /** The service's Ed25519 public key (SPKI PEM) that signs commands, received at enrollment. */
  command_signing_key?: string;
}

export interface Endpoint {
  address: string;
  port: number;
}

/** What isolate-host was asked for, kept so that isolation can be re-applied after a reboot. */
export interface IsolationState {
  since: string;
  reason?: string;
  allow_dns: boolean;
  /** The resolvers DNS may reach while isolated, fixed when isolating (absent: no DNS). */
  dns_servers?: string[];
  allow_portal_communication: boolean;
  portal_ips: string[];
  portal_ports: number[];
  /** The gateway endpoints the agent was talking to, always allowed (the management channel). */
  management: Endpoint[];
  /** When the agent releases the host by itself. */
  expires_at?: string;
}

export interface AlertPosition {
  /** Inode of the alerts file: a different inode means the file was rotated. */
  ino: number;
  /** Bytes of the file whose alerts the gateway has acknowledged. */
  offset: number;
  /** The seq the alert starting at `offset` gets, so a re-sent alert keeps its seq. */
  seq: number;
}

export interface AgentState {
  isolation: IsolationState | null;
  blocked_ips: string[];
  /** Blocked IP → when the agent unblocks it by itself; blocks without an entry are permanent. */
  block_expiry: Record<string, string>;
  rules: Record<string, { version: number; checksum: string }>;
  /** issued_at of the last update_rules frame applied: an older frame is a replay and refused. */
  rules_issued_at?: string;
  alerts: AlertPosition | null;
}

export interface LedgerEntry {
  id: string;
  command: string;
  received_at: string;
  /** Absent while the command runs; a restart that finds it absent knows the run was cut short. */
  completion?: Completion;
  /** Why the command was refused unrun (e.g. its signature); a valid frame for the id may still run. */
  refused?: string;
}

// Ledger entries outlive any redelivery window of the engine (activity retries span hours).
const LEDGER_RETENTION_MS = 30 * 24 * 3600_000;

export async function writeAtomic(path: string, data: string | Buffer, mode = 0o644) {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const file = await open(temp, "wx", mode);
  try {
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await fsyncPath(dirname(path));
}

/** fsync of a file or a directory (a directory's fsync makes a rename in it durable). */
export async function fsyncPath(path: string) {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

export class StateStore {
  private current: AgentState;
  private writes: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    state: AgentState | null,
  ) {
    this.current = {
      isolation: null,
      blocked_ips: [],
      block_expiry: {},
      rules: {},
      alerts: null,
      ...state,
    };
  }

  static async open(dir: string): Promise<StateStore> {
    await mkdir(join(dir, "ledger"), { recursive: true, mode: 0o700 });
    const store = new StateStore(dir, await readJson<AgentState>(join(dir, "state.json")));
    await store.pruneLedger();
    return store;
  }

  get state(): Readonly<AgentState> {
    return this.current;
  }

  /** Applies a change and persists it; changes are written one after another, in order. */
  update(change: (state: AgentState) => void): Promise<void> {
    const next = structuredClone(this.current);
    change(next);
    this.current = next;
    const text = JSON.stringify(next, null, 2);
    // A failed write is reported to its caller and must not stop the writes after it.
    const write = this.writes
      .catch(() => undefined)
      .then(() => writeAtomic(join(this.dir, "state.json"), text, 0o600));
    this.writes = write;
    return write;
  }

  identity(): Promise<Identity | null> {
    return readJson<Identity>(join(this.dir, "identity.json"));
  }

  saveIdentity(identity: Identity): Promise<void> {
    return writeAtomic(join(this.dir, "identity.json"), JSON.stringify(identity, null, 2), 0o600);
  }

  ledgerGet(id: string): Promise<LedgerEntry | null> {
    return readJson<LedgerEntry>(this.ledgerPath(id));
  }

  ledgerPut(entry: LedgerEntry): Promise<void> {
    return writeAtomic(this.ledgerPath(entry.id), JSON.stringify(entry), 0o600);
  }

  private ledgerPath(id: string) {
    // Command ids are chosen by the gateway: hashing keeps any id a safe file name.
    return join(this.dir, "ledger", `${createHash("sha256").update(id).digest("hex")}.json`);
  }

  private async pruneLedger() {
    const dir = join(this.dir, "ledger");
    const cutoff = Date.now() - LEDGER_RETENTION_MS;
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if ((await stat(path)).mtimeMs < cutoff) await rm(path, { force: true });
    }
  }
}
