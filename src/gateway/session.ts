// One agent's WebSocket session on this gateway: hello → welcome, then commands out, and acks,
// completions, heartbeats, rule status and alerts in. Everything the agent sends is validated;
// nothing it sends can throw out of here, so one agent's bad input never reaches another's session.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { WebSocket } from "ws";
import { TokenBucket } from "../domain/rate-limit.ts";
import type { AlertIntake } from "../ingest/intake.ts";
import type { Logger } from "../log.ts";
import { ackClock, metrics } from "../metrics.ts";
import {
  type AgentMessage,
  type AlertForward,
  type Command,
  type Completion,
  type GatewayMessage,
  type Hello,
  parseAgentMessage,
  type RuleFile,
  type RuleSetRef,
} from "../protocol/messages.ts";
import { signCommand, signRules } from "../protocol/signing.ts";
import { newId } from "../secrets.ts";
import type { AgentCredentials } from "../store/agent-keys.ts";
import {
  type AgentIdentity,
  recordDisconnect,
  recordHello,
  recordIsolation,
} from "../store/agents.ts";
import { rejectAlert } from "../store/alerts.ts";
import { appendAudit } from "../store/audit.ts";
import type {
  AgentAck,
  AgentCompletion,
  AgentReport,
  Claim,
  CompletionReport,
  DeliverableCommand,
  OutcomeToReport,
} from "../store/commands.ts";
import type { Db } from "../store/db.ts";
import {
  assignedRuleSet,
  differs,
  filesOfSets,
  MAX_PUSHED_RULES,
  recordRulesReport,
  ruleFilesOf,
  ruleSetFiles,
} from "../store/rules-rollout.ts";
import { contextOf, inSpan, startSpanFrom } from "../tracing.ts";
import type { Batcher } from "./batcher.ts";
import type { CommandSigningKey } from "./signing-key.ts";
import {
  agentSubjects,
  type CommandNotice,
  type ControlMessage,
  controlSubject,
  encode,
  type RulesNotice,
} from "./subjects.ts";
import type { DeliveryWindow } from "./window.ts";

/** WebSocket close codes of this gateway (4000-4999 are the application's). */
export const CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  replaced: 4000,
  revoked: 4001,
  noHello: 4002,
} as const;

const BAD_FRAME_WINDOW_MS = 60_000;
/** How often a session whose agent is not reading checks whether it can send again. */
const BACKPRESSURE_RETRY_MS = 100;
/**
 * How long a signed update_rules frame stays good: long enough for a busy agent's queue, short
 * enough that a captured frame is soon worthless.
 */
const RULES_FRAME_TTL_MS = 10 * 60_000;
/** Commands of one session whose trace context is kept for their ack and completion spans. */
const MAX_TRACED_COMMANDS = 1_000;
/**
 * Noticed command ids a session keeps while the delivery window is full; past it they are
 * forgotten and the agent's whole backlog is claimed instead (the commands are in PostgreSQL).
 */
const MAX_NOTICED = 10_000;
/**
 * A sent command holds its slot of the delivery window until its completion is recorded, or this
 * long: an agent that never answers, or runs a long command, does not shrink the window for the
 * others for longer (the supervisor expires an unacknowledged command after the same grace).
 */
export const UNACKED_HOLD_MS = 10_000;

export interface SessionLimits {
  /** Invalid frames tolerated within a minute; the next one closes the session. */
  maxBadFrames: number;
  framesPerSecond: number;
  frameBurst: number;
  maxQueuedFrames: number;
  maxBufferedBytes: number;
}

export interface SessionDeps {
  db: Db;
  nc: NatsConnection;
  intake: AlertIntake;
  log: Logger;
  gatewayId: string;
  heartbeatMs: number;
  limits: SessionLimits;
  signingKey: CommandSigningKey;
  /** The gateway's live sessions, by agent id: at most one per agent. */
  sessions: Map<string, AgentSession>;
  /** Tells the waiting activity about a recorded completion. */
  report(outcome: OutcomeToReport): Promise<void>;
  /** The gateway's command writes, many sessions' in one statement (batcher.ts). */
  writes: CommandWrites;
  /** Commands sent and not yet completed, gateway-wide (window.ts). */
  window: DeliveryWindow;
}

export interface CommandWrites {
  /** Heartbeats: is the session still the agent's, with a valid key? */
  touch: Batcher<{ agentId: string; keyId: string; sessionId: string }, boolean>;
  claim: Batcher<Claim, DeliverableCommand[]>;
  ack: Batcher<AgentAck, AgentReport>;
  complete: Batcher<AgentCompletion, CompletionReport>;
}

export class AgentSession {
  readonly id = newId("ses");
  readonly openedAt = Date.now();
  lastFrameAt = Date.now();
  private ws: WebSocket | null = null;
  private subscription: Subscription | null = null;
  private hello: Hello | null = null;
  /** Where this agent's alerts are filed: its trusted identity, not what its hello claims. */
  private identity: AgentIdentity | null = null;
  private welcomed = false;
  private ended = false;
  /** Sending time of this session's commands, until their ack (mm_gateway_ack_seconds). */
  private readonly acks = ackClock();
  private closeReason: string | null = null;
  private badFrames: number[] = [];
  /** Set once the session is closed for misbehaving: what the agent still sends is not read. */
  private refused = false;
  private readonly bucket: TokenBucket;
  private queuedFrames = 0;
  private queuedAlerts = 0;
  /** Claimed commands not yet written: the socket held more than it may. */
  private outbox: Command[] = [];
  private backlogDue = false;
  private retry: NodeJS.Timeout | null = null;
  /** issued_at of this session's last rules frame: the agent refuses one not newer than it applied. */
  private rulesIssuedMs = 0;
  // Frames are handled in arrival order (an ack before its completion); alerts keep their own
  // order on a second chain, so a slow alert intake does not hold back command traffic.
  private frames: Promise<void> = Promise.resolve();
  private alerts: Promise<void> = Promise.resolve();
  /** Settles once hello is handled: alerts wait for it, so a refused session forwards none. */
  private greeted: Promise<void> = Promise.resolve();
  private noticed = new Set<string>();
  /**
   * Noticed critical commands (isolation): claimed and sent past a full delivery window, so an
   * isolation never queues behind a burst of other agents' commands. Few by nature; the window
   * bounds the rest.
   */
  private urgent = new Set<string>();
  private flushing = false;
  /** Command id → the traceparent its frame carried (src/tracing.ts); oldest forgotten first. */
  private traces = new Map<string, string>();
  /** Sent commands holding a slot of the delivery window (until completed), with when sent. */
  private unacked = new Map<string, number>();
  /** Acks being recorded, by command id: that command's completion waits for its ack. */
  private acking = new Map<string, Promise<AgentReport>>();

  constructor(
    readonly credentials: AgentCredentials,
    private readonly deps: SessionDeps,
  ) {
    this.bucket = new TokenBucket(
      { perSecond: deps.limits.framesPerSecond, burst: deps.limits.frameBurst },
      performance.now(),
    );
  }

  get agentId(): string {
    return this.credentials.agentId;
  }

  get isWelcomed(): boolean {
    return this.welcomed;
  }

  /** The socket is open: listen for this agent's commands and control messages at once. */
  open(ws: WebSocket): void {
    this.ws = ws;
    ws.on("ping", () => {
      this.lastFrameAt = Date.now();
      // ws answers every ping with a pong: pings spend the same budget as frames.
      if (!this.admit()) this.bad("rate_limited", "too many frames; slow down");
    });
    this.subscription = this.deps.nc.subscribe(agentSubjects(this.agentId), {
      callback: (err, msg) => {
        if (err) return;
        try {
          if (msg.subject.endsWith(".cmd")) {
            const notice = msg.json() as CommandNotice | RulesNotice;
            if ("rule_set" in notice) this.rulesNotice(notice);
            else this.notice(notice.ids, notice.critical === true);
          } else this.control(msg.json() as ControlMessage);
        } catch (error) {
          this.deps.log.warn("unreadable gateway notice", {
            subject: msg.subject,
            error: (error as Error).message,
          });
        }
      },
    });
  }

  message(data: unknown): void {
    metrics.frame("in");
    this.lastFrameAt = Date.now();
    if (this.ended || this.refused) return;
    // Checked before parsing: a flood costs the gateway as little as possible.
    if (!this.admit()) {
      this.bad("rate_limited", "too many frames; slow down");
      return;
    }
    if (typeof data !== "string") {
      this.bad("invalid_message", "binary frames are not part of the protocol; send JSON text");
      return;
    }
    const parsed = parseAgentMessage(data);
    if (!parsed.ok) {
      this.bad(parsed.code, parsed.message);
      return;
    }
    const message = parsed.message;
    if (isHello(message)) {
      if (this.hello) {
        this.bad("invalid_message", "hello was already received on this session");
        return;
      }
      this.hello = message;
    } else if (!this.hello) {
      this.bad("hello_required", "the first frame of a session must be hello");
      return;
    }
    const ref = "alert" in message ? message.seq : undefined;
    if (
      ("alert" in message ? this.queuedAlerts : this.queuedFrames) >=
      this.deps.limits.maxQueuedFrames
    ) {
      this.bad("rate_limited", "too many frames waiting to be handled; slow down", ref?.toString());
      return;
    }
    if ("alert" in message) {
      const greeted = this.greeted;
      this.queuedAlerts++;
      this.alerts = this.alerts
        .then(() => greeted)
        .then(() => this.guard(() => this.onAlert(message, data)))
        .finally(() => this.queuedAlerts--);
      return;
    }
    this.queuedFrames++;
    if (!("type" in message)) {
      // Acks and completions are handed to the gateway's next statements in the order they came,
      // without waiting for the previous one to commit: an agent answering many commands gets
      // them recorded together (a completion waits for its own command's ack, see completed()).
      this.frames = this.frames.then(() => {
        void this.guard(() => this.onFrame(message)).finally(() => this.queuedFrames--);
      });
      return;
    }
    this.frames = this.frames
      .then(() => this.guard(() => this.onFrame(message)))
      .finally(() => this.queuedFrames--);
    if (isHello(message)) this.greeted = this.frames;
  }

  /** Asks the agent to go (it reconnects with backoff); the close handshake gets 2 s. */
  close(code: number, reason: string): void {
    if (this.ended) return;
    this.closeReason ??= reason;
    const ws = this.ws;
    ws?.close(code, reason);
    setTimeout(() => ws?.terminate(), 2_000).unref();
  }

  /** Drops a peer that stopped answering (no close handshake to wait for). */
  terminate(reason: string): void {
    this.closeReason ??= reason;
    this.ws?.terminate();
  }

  error(err: unknown): void {
    // ws reports an oversized frame here before closing with 1009.
    const code = (err as { code?: string }).code;
    if (code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH")
      this.closeReason ??= "frame larger than the configured limit";
    else this.deps.log.debug("agent socket error", { agent: this.agentId, error: String(err) });
  }

  /** The socket closed, however it happened: the agent is offline here. */
  async closed(code: number): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (this.welcomed) metrics.sessionClosed();
    if (this.retry) clearTimeout(this.retry);
    this.outbox = [];
    this.deps.window.release(this.unacked.size);
    this.unacked.clear();
    this.subscription?.unsubscribe();
    if (this.deps.sessions.get(this.agentId) === this) this.deps.sessions.delete(this.agentId);
    const reason =
      this.closeReason ?? (code === CLOSE.tooBig ? "frame larger than the configured limit" : null);
    this.deps.log.info("agent session closed", {
      agent: this.agentId,
      session: this.id,
      code,
      reason,
    });
    await this.guard(async () => {
      await recordDisconnect(this.deps.db, { agentId: this.agentId, sessionId: this.id });
      if (reason && code !== CLOSE.goingAway) {
        await appendAudit(this.deps.db, {
          actor: `gateway:${this.deps.gatewayId}`,
          action: "agent.session_closed",
          agentId: this.agentId,
          details: { session: this.id, code, reason },
        });
      }
    });
  }

  // --- from the agent ----------------------------------------------------------------------------

  private async onFrame(message: Exclude<AgentMessage, AlertForward>): Promise<void> {
    if (this.ended) return;
    if (isHello(message)) return this.onHello(message);
    // Frames that followed a refused hello are not this agent's to send.
    if (!this.welcomed) return;
    if ("type" in message) {
      if (message.type === "heartbeat") {
        const live = await this.deps.writes.touch.submit({
          ...this.credentials,
          sessionId: this.id,
        });
        if (!live) this.close(CLOSE.revoked, "this session was replaced or its API key revoked");
        // A command notice lost on NATS costs at most a heartbeat: the backlog is claimed here too,
        // when the delivery window has room. Not while it is full: 20,000 agents' heartbeats would
        // queue hundreds of waiting claims a second (memory) and take the slots of real commands;
        // the agent's own notices are delivered meanwhile, and a later heartbeat checks again.
        else if (!this.flushing && this.deps.window.hasRoom) void this.guard(() => this.deliver());
        return;
      }
      return recordRulesReport(this.deps.db, this.agentId, message);
    }
    if (message.status === "received") {
      startSpanFrom("gateway.ack", this.traces.get(message.command_id), {
        "mm.command.id": message.command_id,
        "mm.agent.id": this.agentId,
      })?.span.end();
      const writing = this.deps.writes.ack.submit({
        agentId: this.agentId,
        commandId: message.command_id,
        timestamp: message.timestamp,
        actor: `agent:${this.agentId}`,
      });
      this.acking.set(message.command_id, writing);
      const ack = await writing.finally(() => {
        if (this.acking.get(message.command_id) === writing) this.acking.delete(message.command_id);
      });
      if (ack.kind === "recorded") this.acks.acknowledged(message.command_id);
      if (ack.kind === "unknown")
        this.bad("unknown_command", "no such command was sent to this agent", message.command_id);
      return;
    }
    return this.onCompletion(message);
  }

  private async onHello(hello: Hello): Promise<void> {
    this.identity = await recordHello(this.deps.db, {
      ...this.credentials,
      sessionId: this.id,
      gatewayId: this.deps.gatewayId,
      hello,
    });
    if (!this.identity) {
      this.close(CLOSE.revoked, "API key revoked");
      return;
    }
    // One session per agent: a newer one replaces the older, here and on every other gateway.
    const previous = this.deps.sessions.get(this.agentId);
    if (previous && previous !== this)
      previous.close(CLOSE.replaced, "replaced by a newer session of this agent");
    this.deps.sessions.set(this.agentId, this);
    this.deps.nc.publish(
      controlSubject(this.agentId),
      encode({ action: "replaced", session: this.id }),
    );
    this.welcomed = true;
    metrics.sessionOpened();
    this.send({
      type: "welcome",
      agent_id: this.agentId,
      heartbeat_interval_ms: this.deps.heartbeatMs,
      command_signing_key: this.deps.signingKey.publicKeyPem,
    });
    this.deps.log.info("agent session open", {
      agent: this.agentId,
      session: this.id,
      hostname: hello.hostname,
    });
    await this.deliver();
    // Reconciliation: an agent that was offline during a rollout gets its whole assigned set, so
    // that what was removed meanwhile is removed there too.
    const assigned = await assignedRuleSet(this.deps.db, this.agentId);
    const [first, ...more] = assigned.sets;
    if (first && differs(assigned.files, hello.rules)) {
      // Several groups' sets reach the agent as one: the frame names them all.
      const ref = more.length
        ? {
            name: assigned.sets.map((a) => `${a.rule_set}@${a.version}`).join("+"),
            version: Math.max(...assigned.sets.map((a) => a.version)),
          }
        : { name: first.rule_set, version: first.version };
      this.sendRules(assigned.files, ref, true);
    }
  }

  /** A rollout's wave or a push names this agent: send it the rule set version, in frame order. */
  private rulesNotice(notice: RulesNotice): void {
    this.frames = this.frames.then(() =>
      this.guard(async () => {
        if (!this.welcomed || this.ended) return;
        const ref = { name: notice.rule_set, version: notice.version };
        if (notice.rules) {
          const rules = await ruleFilesOf(this.deps.db, notice.rules.slice(0, MAX_PUSHED_RULES));
          if (rules.length) this.sendRules(rules, ref, false);
          return;
        }
        if (notice.sets?.length)
          return this.sendRules(await filesOfSets(this.deps.db, notice.sets), ref, true);
        // A push outside the agent's assignment: added to what it runs, removing nothing.
        const rules = await ruleSetFiles(this.deps.db, notice.rule_set, notice.version);
        if (rules.length) this.sendRules(rules, ref, false);
      }),
    );
  }

  /** An update_rules frame signed for this agent; issued_at strictly grows within the session. */
  private sendRules(rules: RuleFile[], ruleSet: RuleSetRef, complete: boolean): void {
    const issued = Math.max(Date.now(), this.rulesIssuedMs + 1);
    this.rulesIssuedMs = issued;
    const frame = {
      operation: "update_rules" as const,
      rules,
      rule_set: ruleSet,
      complete,
      issued_at: new Date(issued).toISOString(),
      expires_at: new Date(issued + RULES_FRAME_TTL_MS).toISOString(),
    };
    this.send({
      ...frame,
      signature: signRules(this.deps.signingKey.privateKey, this.agentId, frame),
    });
  }

  private async onCompletion(completion: Completion): Promise<void> {
    const traceparent = this.traces.get(completion.command_id);
    if (!traceparent) return this.completed(completion);
    this.traces.delete(completion.command_id);
    // The end of the alert's trace: the agent's word, recorded and reported to the activity.
    await inSpan(
      "gateway.completion",
      {
        "mm.command.id": completion.command_id,
        "mm.agent.id": this.agentId,
        "mm.command.success": completion.success,
      },
      () => this.completed(completion),
      contextOf(traceparent),
    );
  }

  private async completed(completion: Completion): Promise<void> {
    const outcome = {
      success: completion.success,
      message: completion.message,
      details: completion.details,
      timestamp: completion.timestamp,
    };
    // Acks and completions are separate statements, so an ack never waits behind completions; a
    // completion is recorded after its own command's ack (the audit log keeps the agent's order).
    await this.acking.get(completion.command_id)?.catch(() => {});
    const done = await this.deps.writes.complete.submit({
      agentId: this.agentId,
      commandId: completion.command_id,
      outcome,
      actor: `agent:${this.agentId}`,
    });
    // Its slot is freed by the completion, not the ack: a window freed by acks alone would let
    // completions waiting to be recorded pile up without bound (and fill the session's frame queue).
    this.answered(completion.command_id);
    if (done.kind === "unknown") {
      this.bad("unknown_command", "no such command was sent to this agent", completion.command_id);
      return;
    }
    if (done.kind === "repeat") return;
    metrics.command(completion.success ? "completed" : "failed");
    if (
      completion.success &&
      (done.command === "isolate-host" || done.command === "release-host")
    ) {
      // The registry follows the agent's own word, whichever workflow asked.
      await recordIsolation(
        this.deps.db,
        this.agentId,
        done.command === "isolate-host"
          ? {
              isolated: true,
              since: completion.timestamp,
              ...(done.workflowId && { workflow_id: done.workflowId }),
            }
          : { isolated: false },
      );
    }
    if (done.toReport) await this.deps.report(done.toReport);
  }

  private async onAlert(message: AlertForward, raw: string): Promise<void> {
    if (!this.welcomed || this.ended) return;
    const identity = this.identity as AgentIdentity;
    const wazuhId = identity.wazuh_agent_id;
    const ip = primaryIp(identity.ips);
    const ref = message.seq === undefined ? undefined : String(message.seq);
    try {
      const result = await this.deps.intake({ alert: message.alert }, "agent", {
        host: { name: identity.hostname, ...(wazuhId && { agentId: wazuhId }), ...(ip && { ip }) },
      });
      if (!result.ok) {
        // Kept for operators, and acknowledged: sending it again would not make it readable.
        await rejectAlert(this.deps.db, "agent", raw, result.errors);
        const summary = result.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
        this.send({ type: "error", code: "invalid_alert", message: summary, ...(ref && { ref }) });
      }
    } catch (err) {
      this.deps.log.warn("agent alert not stored", {
        agent: this.agentId,
        error: (err as Error).message,
      });
      this.send({
        type: "error",
        code: "alert_not_stored",
        message: "the alert could not be stored; send it again later",
        ...(ref && { ref }),
      });
      return;
    }
    if (message.seq !== undefined) this.send({ type: "alert_ack", seq: message.seq });
  }

  // --- to the agent ------------------------------------------------------------------------------

  private notice(ids: string[], critical = false): void {
    for (const id of ids) (critical ? this.urgent : this.noticed).add(id);
    if (this.noticed.size + this.urgent.size > MAX_NOTICED) {
      this.noticed.clear();
      this.urgent.clear();
      this.backlogDue = true;
    }
    if (this.welcomed) void this.flush();
  }

  /** The agent completed a sent command: its slot of the delivery window is free. */
  private answered(commandId: string): void {
    if (this.unacked.delete(commandId)) this.deps.window.release(1);
  }

  /** Frees the window slots of commands sent longer ago than `UNACKED_HOLD_MS` (server sweep). */
  releaseUnanswered(now: number): void {
    for (const [id, sentAt] of this.unacked) {
      if (now - sentAt < UNACKED_HOLD_MS) break; // oldest first: the rest are younger
      this.answered(id);
    }
  }

  /** Notices arriving together are claimed with one query. */
  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while ((this.urgent.size || this.noticed.size || this.backlogDue) && !this.ended) {
        const urgent = this.urgent.size > 0;
        const ids = [...(urgent ? this.urgent : this.noticed)];
        (urgent ? this.urgent : this.noticed).clear();
        await this.guard(() => this.deliver(ids, urgent));
        // Held back by the socket (deliver set a retry): the retry claims what is left.
        if (this.retry) break;
      }
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Claims and sends the given commands, or the agent's whole backlog; critical ones first. While
   * the agent is not reading, nothing is claimed: its commands wait in PostgreSQL meanwhile.
   */
  private async deliver(ids?: string[], urgent = false): Promise<void> {
    if (this.outbox.length || this.buffered() >= this.deps.limits.maxBufferedBytes) {
      this.backlogDue = true;
      this.retryLater();
      return;
    }
    const backlog = !urgent && (!ids || this.backlogDue);
    if (backlog) this.backlogDue = false;
    // Room in the gateway's delivery window first (but for critical commands, which take their
    // slots without waiting); ids beyond it wait in the notice set. One session never has more
    // out than half its frame queue holds (an ack and a completion each).
    const room = Math.max(1, Math.floor(this.deps.limits.maxQueuedFrames / 2) - this.unacked.size);
    const reserved = urgent
      ? 0
      : await this.deps.window.reserve(Math.min(room, backlog ? 1 : (ids as string[]).length));
    let claim = ids;
    if (!urgent && !backlog && ids && ids.length > reserved) {
      claim = ids.slice(0, reserved);
      for (const id of ids.slice(reserved)) this.noticed.add(id);
    }
    let commands: DeliverableCommand[] = [];
    try {
      if (!this.ended)
        commands = await this.deps.writes.claim.submit({
          agentId: this.agentId,
          sessionId: this.id,
          ...(!backlog && { ids: claim }),
        });
    } finally {
      const holding = this.ended ? [] : commands.filter((c) => !this.unacked.has(c.id));
      if (holding.length > reserved) this.deps.window.take(holding.length - reserved);
      else this.deps.window.release(reserved - holding.length);
      const now = Date.now();
      for (const c of holding) this.unacked.set(c.id, now);
    }
    metrics.command("delivered", commands.length);
    for (const c of commands) {
      // The seed's command frame, keys in the seed's order, then what lets the agent trust it.
      const command = {
        command: c.command,
        priority: c.priority,
        id: c.id,
        details: c.details,
        expires_at: c.expiresAt.toISOString(),
      };
      const sending = startSpanFrom("gateway.send", c.traceparent, {
        "mm.command.id": c.id,
        "mm.command": c.command,
        "mm.agent.id": this.agentId,
      });
      if (sending?.traceparent) this.traced(c.id, sending.traceparent);
      this.outbox.push({
        ...command,
        signature: signCommand(this.deps.signingKey.privateKey, this.agentId, command),
        ...(sending?.traceparent && { traceparent: sending.traceparent }),
      });
      sending?.span.end();
    }
    this.sendOutbox();
  }

  private traced(commandId: string, traceparent: string): void {
    this.traces.delete(commandId);
    this.traces.set(commandId, traceparent);
    if (this.traces.size > MAX_TRACED_COMMANDS)
      this.traces.delete(this.traces.keys().next().value as string);
  }

  /** Writes claimed commands while the socket holds less than its bound. */
  private sendOutbox(): void {
    while (this.outbox.length && this.buffered() < this.deps.limits.maxBufferedBytes)
      this.send(this.outbox.shift() as Command);
    if (this.outbox.length) this.retryLater();
  }

  private retryLater(): void {
    if (this.retry || this.ended) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      if (this.ended) return;
      this.sendOutbox();
      if (!this.outbox.length && this.backlogDue) void this.guard(() => this.deliver());
    }, BACKPRESSURE_RETRY_MS);
  }

  private buffered(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  private control(message: ControlMessage): void {
    if (message.action === "replaced" && message.session !== this.id) {
      this.close(CLOSE.replaced, "replaced by a newer session of this agent");
    } else if (
      message.action === "revoked" &&
      (!message.key_ids || message.key_ids.includes(this.credentials.keyId))
    ) {
      this.close(CLOSE.revoked, "API key revoked");
    }
  }

  private send(message: GatewayMessage): void {
    if (this.ws?.readyState !== 1 /* OPEN */) return;
    // Commands stop at the bound (above); an agent that lets twice as much pile up is not reading.
    if (!("command" in message) && this.buffered() >= 2 * this.deps.limits.maxBufferedBytes) {
      this.refuse(`not reading its frames (${this.buffered()} bytes waiting)`);
      return;
    }
    this.ws.send(JSON.stringify(message));
    metrics.frame("out");
    if ("command" in message) this.acks.sent(message.id);
  }

  /** Ends a misbehaving session: nothing more it sends is read. */
  private refuse(reason: string): void {
    this.refused = true;
    this.close(CLOSE.policy, reason);
  }

  /** Takes one frame from the session's token bucket; false when it is empty. */
  private admit(): boolean {
    return this.bucket.take(performance.now());
  }

  /** A protocol error frame; too many within a minute and the session ends. */
  private bad(code: string, message: string, ref?: string): void {
    if (this.refused) return;
    this.send({ type: "error", code, message: message.slice(0, 1_000), ...(ref && { ref }) });
    const now = Date.now();
    this.badFrames.push(now);
    while ((this.badFrames[0] ?? now) < now - BAD_FRAME_WINDOW_MS) this.badFrames.shift();
    if (this.badFrames.length >= this.deps.limits.maxBadFrames)
      this.refuse(`too many invalid frames (${this.badFrames.length} within a minute)`);
  }

  /** Runs a step; a failure (e.g. the database briefly away) is logged and answered, never thrown. */
  private async guard(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      this.deps.log.error("agent frame not handled", {
        agent: this.agentId,
        session: this.id,
        error: (err as Error).message,
      });
      this.send({
        type: "error",
        code: "internal_error",
        message: "the gateway could not handle this frame",
      });
    }
  }
}

const isHello = (m: AgentMessage): m is Hello => "type" in m && m.type === "hello";

/** The address to name the host by: the first that is neither loopback nor link-local. */
export function primaryIp(ips: string[]): string | undefined {
  return ips.find((ip) => !/^(127\.|::1$|fe80:|169\.254\.)/i.test(ip)) ?? ips[0];
}
