// Conversations: 1:1 and group messages, live pushes, sync on login (and
// after every reconnect), gaps pulled with Fetch, history scroll-back, and
// sends that survive a reconnect (sent again as resends). Read marks (the
// unread badges, "seen" under one's own messages), typing notices and
// recalls.
//
// Sequencing follows the protocol: a MessagePush shows a message at once
// (seq 0); a ConversationMoved push gives its sequence, or reveals a gap
// that is fetched; every message is shown once, by message id.

import type { ConversationMoved, ConversationState, Message, ReadReceipt, Recalled, SendAck, Typing } from "../gen/client_pb";
import { ErrorCode } from "../gen/client_pb";
import { historyPageSize } from "../config";
import { ServerError, answerLost, errorText } from "../protocol/errors";
import { directConversation, groupConversation, parseConversation } from "../protocol/frames";
import type { BodyInit, ConversationRef } from "../protocol/frames";
import type { Feature, Session } from "../session";
import { fill, h, timeOf } from "../ui/dom";
import { fail, notify } from "../ui/status";
import type { Users } from "./users";

/** Fetch page size (gaps and catch-up). */
const FETCH_PAGE = 200;
/** At most one typing notice per conversation this often (the gateway's
 * default `typing_interval_ms`; one sooner is refused there). */
const TYPING_EVERY_MS = 2_000;
/** How long "typing…" shows after a notice. */
const TYPING_SHOWN_MS = 5_000;
/** The recall button shows on one's own messages this young (the
 * gateway's default `recall_window_ms`; the gateway decides). */
const RECALL_WINDOW_MS = 120_000;

export type MsgState = "sent" | "sending" | "failed";

export interface Msg {
  /** 0 until the server acknowledged it (our own, being sent). */
  id: bigint;
  /** 0 until its commit is known. */
  seq: bigint;
  sender: bigint;
  body: string;
  time: bigint;
  clientMsgId: string;
  state: MsgState;
  error?: string;
  /** Its sender took it back (the body is gone). */
  recalled: boolean;
  /** Arrival order, for messages without a sequence yet. */
  order: number;
}

export class Conversation {
  readonly messages = new Map<string, Msg>();
  /** Highest sequence this client has in order (everything up to it). */
  lastSeq = 0n;
  /** The newest message id seen (reads ask the server to include it). */
  lastSeen = 0n;
  /** This user's read mark (Sync, MarkRead answers, other devices' receipts). */
  readSeq = 0n;
  /** The other user's read mark of a 1:1 conversation ("seen"). */
  peerReadSeq = 0n;
  /** The read mark last asked for (not yet answered). */
  readAsked = 0n;
  /** Recalls of messages not held yet, applied when they arrive. */
  recalls = new Set<bigint>();
  /**
   * The id each send (`sender/clientMsgId`) is held under: a resend racing
   * its first attempt makes two copies, one pushed and one stored.
   */
  sends = new Map<string, bigint>();
  /** Who is typing here, until when (ms). */
  typing = new Map<bigint, number>();
  historyLoaded = false;
  hasOlder = false;
  loadingOlder = false;
  unread = 0;

  constructor(
    readonly id: string,
    readonly ref: ConversationRef,
  ) {}

  has(messageId: bigint): boolean {
    return this.messages.has(`m:${messageId}`);
  }

  get(messageId: bigint): Msg | undefined {
    return this.messages.get(`m:${messageId}`);
  }

  /** Messages in order: by sequence, then the ones without one yet. */
  sorted(): Msg[] {
    return [...this.messages.values()].sort((a, b) => {
      if (a.seq !== 0n && b.seq !== 0n) return a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0;
      if (a.seq !== 0n) return -1;
      if (b.seq !== 0n) return 1;
      return a.order - b.order;
    });
  }

  /** The lowest sequence held (0 when none has one). */
  oldestSeq(): bigint {
    let min = 0n;
    for (const m of this.messages.values()) if (m.seq !== 0n && (min === 0n || m.seq < min)) min = m.seq;
    return min;
  }

  last(): Msg | undefined {
    const s = this.sorted();
    return s[s.length - 1];
  }

  /** Marks message `id` recalled (now, or when it arrives). */
  recall(id: bigint): boolean {
    const m = this.get(id);
    if (!m) {
      this.recalls.add(id);
      return false;
    }
    m.recalled = true;
    m.body = "";
    return true;
  }
}

interface Unacked {
  convId: string;
  body: BodyInit;
}

export interface ChatHooks {
  /** Title of a conversation (a friend's or a group's name). */
  title(ref: ConversationRef): string;
  /** The list views (friends, groups, other chats) need redrawing. */
  listsChanged(): void;
  /** Fills the side panel of an open group (members, requests). */
  groupPanel(groupId: bigint, el: HTMLElement): void;
}

let arrival = 0;

export class Chat implements Feature {
  readonly conversations = new Map<string, Conversation>();
  active?: Conversation;
  /** Sends awaiting their ack, by client message id. */
  private outbox = new Map<string, Unacked>();
  /** The cursor of the last sync (0: none yet). */
  private cursor = 0n;
  /** Per-conversation work queue: catch-ups of one conversation never overlap. */
  private queues = new Map<string, Promise<void>>();
  private readonly page = historyPageSize();

  // The open conversation's elements.
  private titleEl = h("h2", { testid: "chat-title" });
  private listEl = h("ol", { class: "messages", testid: "messages" });
  private olderBtn = h("button", { testid: "load-older", class: "link", type: "button" }, "Load older messages");
  private panelEl = h("aside", { class: "side-panel", testid: "side-panel" });
  private input = h("input", { testid: "compose-input", placeholder: "Write a message…", autocomplete: "off", maxlength: "4000" });
  private typingEl = h("span", { class: "typing", testid: "typing" });
  /** When a typing notice last went out, per conversation. */
  private typingSent = new Map<string, number>();
  private typingTimer?: ReturnType<typeof setTimeout>;
  /** A typing notice held back by the interval, sent when it ends if the
   * user is still typing. */
  private typingLater?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly session: Session,
    private readonly users: Users,
    private readonly el: HTMLElement,
    readonly hooks: ChatHooks,
  ) {
    session.pushes.on("messagePush", (p) => {
      if (p.message) this.onPush(p.message);
    });
    session.pushes.on("moved", (m) => this.onMoved(m));
    session.pushes.on("resync", () => this.serialSync());
    session.pushes.on("readReceipt", (r) => this.onReceipt(r));
    session.pushes.on("typingPush", (t) => this.onTyping(t));
    session.pushes.on("recalled", (r) => this.onRecalled(r));
    this.input.addEventListener("input", () => void this.typed());
    document.addEventListener("visibilitychange", () => {
      if (this.active) this.markRead(this.active);
    });
    this.olderBtn.addEventListener("click", () => void this.loadOlder());
    this.listEl.addEventListener("scroll", () => {
      const c = this.active;
      if (c && this.listEl.scrollTop < 24 && c.hasOlder && !c.loadingOlder) void this.loadOlder();
    });
    users.onLearnt = () => {
      this.hooks.listsChanged();
      this.renderActive();
    };
    this.renderEmpty();
  }

  async start(resumed: boolean): Promise<void> {
    if (resumed) await this.resendAll();
    await this.sync();
  }

  reset(): void {
    this.conversations.clear();
    this.outbox.clear();
    this.queues.clear();
    this.typingSent.clear();
    this.cursor = 0n;
    this.active = undefined;
    this.renderEmpty();
  }

  /** The conversation with id `id`, made when new. */
  conversation(id: string): Conversation {
    let c = this.conversations.get(id);
    if (!c) {
      c = new Conversation(id, parseConversation(id, this.session.userId));
      this.conversations.set(id, c);
    }
    return c;
  }

  openDirect(peer: bigint): void {
    void this.open(directConversation(this.session.userId, peer));
  }

  openGroup(groupId: bigint): void {
    void this.open(groupConversation(groupId));
  }

  /** Forgets a conversation (a group left or deleted). */
  forget(id: string): void {
    this.conversations.delete(id);
    if (this.active?.id === id) {
      this.active = undefined;
      this.renderEmpty();
    }
    this.hooks.listsChanged();
  }

  async open(id: string): Promise<void> {
    const c = this.conversation(id);
    this.active = c;
    this.renderPane(c);
    this.hooks.listsChanged();
    if (!c.historyLoaded) {
      await this.serial(c.id, () => this.loadLatest(c, false)).catch((e) => fail("Loading the conversation failed", e));
      this.renderActive(true);
    }
    this.markRead(c);
  }

  /** Summary for the lists: unread count and the last message. */
  summary(id: string): { unread: number; preview: string } {
    const c = this.conversations.get(id);
    if (!c) return { unread: 0, preview: "" };
    const last = c.last();
    return { unread: c.unread, preview: last ? (last.recalled ? "(recalled)" : last.body) : "" };
  }

  /** Refreshes the open conversation's side panel (group changes). */
  refreshPanel(): void {
    const c = this.active;
    if (c?.ref.kind === "group") this.hooks.groupPanel(c.ref.groupId, this.panelEl);
  }

  // ------------------------------------------------------------ receiving

  private onPush(m: Message): void {
    const c = this.conversation(m.conversationId);
    if (m.messageId !== 0n && !c.has(m.messageId)) {
      c.typing.delete(m.sender);
      this.add(c, m, true);
      c.lastSeen = m.messageId;
      this.changed(c);
    }
  }

  /** A read mark moved: this user's (another device) or the other user's. */
  private onReceipt(r: ReadReceipt): void {
    const c = this.conversation(r.conversationId);
    if (r.reader === this.session.userId) this.readUpTo(c, r.readSeq);
    else if (r.readSeq > c.peerReadSeq) c.peerReadSeq = r.readSeq;
    this.changed(c);
  }

  /** This user's read mark is `seq`: the unread count follows. */
  private readUpTo(c: Conversation, seq: bigint): void {
    if (seq > c.readSeq) c.readSeq = seq;
    let unread = 0;
    for (const m of c.messages.values()) {
      if (m.sender !== this.session.userId && !m.recalled && (m.seq === 0n || m.seq > c.readSeq)) unread++;
    }
    c.unread = Math.min(c.unread, unread);
  }

  private onTyping(t: Typing): void {
    const c = this.conversation(t.conversationId);
    c.typing.set(t.userId, Date.now() + TYPING_SHOWN_MS);
    if (this.active === c) this.renderTyping(c);
  }

  private onRecalled(r: Recalled): void {
    const c = this.conversation(r.conversationId);
    const held = c.get(r.messageId);
    const counted = held && !held.recalled && held.sender !== this.session.userId && (held.seq === 0n || held.seq > c.readSeq);
    c.recall(r.messageId);
    if (counted && c.unread > 0) c.unread--;
    this.changed(c);
  }

  private onMoved(m: ConversationMoved): Promise<void> {
    return this.serial(m.conversationId, async () => {
      const c = this.conversation(m.conversationId);
      const known = c.get(m.messageId);
      if (known && known.seq === 0n) known.seq = m.seq;
      if (m.seq <= c.lastSeq) {
        if (known) this.changed(c);
        return;
      }
      if (m.seq === c.lastSeq + 1n && known) {
        c.lastSeq = m.seq;
        this.changed(c);
        return;
      }
      await this.catchUp(c, true);
      this.changed(c);
    });
  }

  /** Adds a message (new ones only); `live` counts it as unread when not open. */
  private add(c: Conversation, m: Message, live: boolean): boolean {
    if (m.recallOf !== 0n) {
      // Not a message: the recall of one (its own place in the sequence).
      c.recall(m.recallOf);
      return false;
    }
    if (c.has(m.messageId)) {
      const known = c.get(m.messageId)!;
      if (known.seq === 0n && m.seq !== 0n) known.seq = m.seq;
      if (m.recalled) c.recall(m.messageId);
      return false;
    }
    const send = m.clientMsgId ? `${m.sender}/${m.clientMsgId}` : "";
    const copy = send ? c.sends.get(send) : undefined;
    if (copy !== undefined && copy !== m.messageId) {
      // Another copy of a send held already: one message. A stored copy
      // (it has a sequence) takes the place of a pushed one the store did
      // not keep; a late push of the copy not kept is dropped.
      const shown = c.get(copy);
      if (m.seq !== 0n && shown && shown.seq === 0n) {
        c.messages.delete(`m:${copy}`);
        c.messages.set(`m:${m.messageId}`, { ...shown, id: m.messageId, seq: m.seq });
        c.sends.set(send, m.messageId);
        if (c.lastSeen === copy) c.lastSeen = m.messageId;
      }
      return false;
    }
    if (send) c.sends.set(send, m.messageId);
    const recalled = m.recalled || c.recalls.delete(m.messageId);
    // Our own message, sent from this tab and just acknowledged elsewhere.
    if (m.clientMsgId && m.sender === this.session.userId) {
      const pending = c.messages.get(`c:${m.clientMsgId}`);
      if (pending) c.messages.delete(`c:${m.clientMsgId}`);
    }
    c.messages.set(`m:${m.messageId}`, {
      id: m.messageId,
      seq: m.seq,
      sender: m.sender,
      body: m.body,
      time: m.serverTimeMs,
      clientMsgId: m.clientMsgId,
      state: "sent",
      recalled,
      order: arrival++,
    });
    if (recalled) c.messages.get(`m:${m.messageId}`)!.body = "";
    if (live && !recalled && m.sender !== this.session.userId && !this.reading(c) && (m.seq === 0n || m.seq > c.readSeq)) c.unread++;
    return true;
  }

  /** Brings `c` up to date: the newest page when never read, else everything after lastSeq. */
  private async catchUp(c: Conversation, live: boolean): Promise<void> {
    if (!c.historyLoaded && c.lastSeq === 0n) await this.loadLatest(c, live);
    else await this.fetchAfter(c, live);
  }

  private async fetchAfter(c: Conversation, live: boolean): Promise<void> {
    for (;;) {
      const reply = await this.session.request(
        { case: "fetch", value: { conversationId: c.id, afterSeq: c.lastSeq, limit: FETCH_PAGE, minMessageId: c.lastSeen } },
        "messages",
      );
      for (const m of reply.messages) {
        this.add(c, m, live);
        if (m.seq > c.lastSeq) c.lastSeq = m.seq;
      }
      if (reply.messages.length < FETCH_PAGE) return;
    }
  }

  /** The newest page of history. */
  private async loadLatest(c: Conversation, live: boolean): Promise<void> {
    const reply = await this.session.request(
      { case: "history", value: { conversationId: c.id, beforeSeq: 0n, limit: this.page, minMessageId: c.lastSeen } },
      "messages",
    );
    let unread = 0;
    for (const m of reply.messages) {
      if (this.add(c, m, false) && m.recallOf === 0n && !m.recalled && m.sender !== this.session.userId && m.seq > c.readSeq) unread++;
      if (m.seq > c.lastSeq) c.lastSeq = m.seq;
    }
    if (live && !this.reading(c)) c.unread += unread;
    c.historyLoaded = true;
    c.hasOlder = reply.messages.length >= this.page && c.oldestSeq() > 1n;
  }

  /** The page of history before the oldest message held. */
  async loadOlder(): Promise<void> {
    const c = this.active;
    if (!c || c.loadingOlder) return;
    c.loadingOlder = true;
    this.olderBtn.disabled = true;
    try {
      const before = c.oldestSeq();
      if (before === 0n) {
        await this.serial(c.id, () => this.loadLatest(c, false));
      } else {
        const reply = await this.session.request(
          { case: "history", value: { conversationId: c.id, beforeSeq: before, limit: this.page, minMessageId: c.lastSeen } },
          "messages",
        );
        for (const m of reply.messages) this.add(c, m, false);
        c.hasOlder = reply.messages.length >= this.page && c.oldestSeq() > 1n;
      }
    } catch (e) {
      fail("Loading older messages failed", e);
    } finally {
      c.loadingOlder = false;
      this.olderBtn.disabled = false;
    }
    if (this.active === c) this.renderMessages(c, "keep");
  }

  /** Everything that moved since the last sync (all conversations the first time). */
  async sync(): Promise<void> {
    const since = this.cursor;
    let cursor: bigint | undefined;
    let page = { cursor: "", limit: 0 };
    const moved: ConversationState[] = [];
    for (let i = 0; i < 1000; i++) {
      const reply = await this.session.request({ case: "sync", value: { since, page } }, "syncReply");
      cursor ??= reply.cursor;
      moved.push(...reply.conversations);
      if (!reply.page?.more) break;
      page = { cursor: reply.page.nextCursor, limit: 0 };
    }
    for (const s of moved) {
      const c = this.conversation(s.conversationId);
      if (s.seq > c.lastSeq) {
        await this.serial(c.id, () => this.catchUp(c, false));
      }
      // The server's counts stand: they cover what this page never held.
      if (s.readSeq > c.readSeq) c.readSeq = s.readSeq;
      if (s.peerReadSeq > c.peerReadSeq) c.peerReadSeq = s.peerReadSeq;
      c.unread = Number(s.unreadCount);
      if (this.active === c) this.markRead(c);
    }
    this.cursor = cursor !== undefined && cursor > since ? cursor : since;
    this.hooks.listsChanged();
    if (this.active) this.renderActive();
  }

  private serialSync(): Promise<void> {
    return this.sync().catch((e) => fail("Catching up failed", e));
  }

  /** Runs `f` after the work queued for conversation `id`. */
  private serial(id: string, f: () => Promise<void>): Promise<void> {
    const prev = this.queues.get(id) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(f);
    const tail = next.catch(() => {});
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
    return next;
  }

  // ------------------------------------------------------------ sending

  async send(text: string): Promise<void> {
    const c = this.active;
    if (!c || !text) return;
    const clientMsgId = newClientMsgId();
    let body: BodyInit;
    if (c.ref.kind === "direct") {
      body = { case: "send", value: { toUser: c.ref.peer, body: text, clientMsgId } };
    } else if (c.ref.kind === "group") {
      body = { case: "groupSend", value: { groupId: c.ref.groupId, body: text, clientMsgId } };
    } else {
      notify("This conversation cannot be written to", "error");
      return;
    }
    c.messages.set(`c:${clientMsgId}`, {
      id: 0n,
      seq: 0n,
      sender: this.session.userId,
      body: text,
      time: BigInt(Date.now()),
      clientMsgId,
      state: "sending",
      recalled: false,
      order: arrival++,
    });
    this.typingSent.delete(c.id);
    this.changed(c);
    this.outbox.set(clientMsgId, { convId: c.id, body });
    await this.deliver(clientMsgId, body);
  }

  /** Sends one outbox entry; keeps it when the answer was lost (a reconnect resends it). */
  private async deliver(clientMsgId: string, body: BodyInit): Promise<void> {
    const entry = this.outbox.get(clientMsgId);
    if (!entry) return;
    const c = this.conversation(entry.convId);
    try {
      const ack = await this.session.request(body, "sendAck");
      this.outbox.delete(clientMsgId);
      this.acked(c, clientMsgId, ack);
    } catch (e) {
      if (answerLost(e)) return; // still in the outbox
      this.outbox.delete(clientMsgId);
      const pending = c.messages.get(`c:${clientMsgId}`);
      if (pending) {
        pending.state = "failed";
        pending.error = errorText(e);
      }
      this.changed(c);
      fail("Sending failed", e);
    }
  }

  private acked(c: Conversation, clientMsgId: string, ack: SendAck): void {
    const pending = c.messages.get(`c:${clientMsgId}`);
    c.messages.delete(`c:${clientMsgId}`);
    if (ack.conversationId && ack.conversationId !== c.id) {
      console.warn(`ack for ${ack.conversationId}, sent in ${c.id}`);
    }
    if (!c.has(ack.messageId)) {
      c.sends.set(`${this.session.userId}/${clientMsgId}`, ack.messageId);
      c.messages.set(`m:${ack.messageId}`, {
        id: ack.messageId,
        seq: 0n,
        sender: this.session.userId,
        body: pending?.body ?? "",
        time: ack.serverTimeMs,
        clientMsgId,
        state: "sent",
        recalled: false,
        order: pending?.order ?? arrival++,
      });
    }
    c.lastSeen = ack.messageId;
    this.changed(c);
  }

  /** The conversation a request about `c` names: the other user or the group. */
  private target(c: Conversation): { user?: { userId: bigint }; groupId?: bigint } | undefined {
    if (c.ref.kind === "direct") return { user: { userId: c.ref.peer } };
    if (c.ref.kind === "group") return { groupId: c.ref.groupId };
    return undefined;
  }

  /** Whether `c` is being looked at (open, in a visible tab). */
  private reading(c: Conversation): boolean {
    return this.active === c && document.visibilityState === "visible";
  }

  /** Tells the server `c` is read up to its newest message, when it is open. */
  markRead(c: Conversation): void {
    const t = this.target(c);
    if (!t || !this.reading(c) || c.lastSeq === 0n) return;
    const upTo = c.lastSeq;
    c.unread = 0;
    this.hooks.listsChanged();
    if (upTo <= c.readSeq || upTo <= c.readAsked) return;
    c.readAsked = upTo;
    this.session
      .request({ case: "markRead", value: { ...t, seq: upTo } }, "readReceipt")
      .then((r) => {
        this.readUpTo(c, r.readSeq);
        this.changed(c);
      })
      .catch((e) => {
        c.readAsked = 0n;
        if (!answerLost(e)) fail("Marking the conversation read failed", e);
      });
  }

  /** The compose box changed: a typing notice, at most one per interval;
   * one too soon (say, right after a message went) goes when the interval
   * ends, if the box still holds text then. */
  private async typed(): Promise<void> {
    clearTimeout(this.typingLater);
    const c = this.active;
    const t = c && this.target(c);
    if (!c || !t || this.input.value.trim() === "") return;
    const now = Date.now();
    const wait = (this.typingSent.get(c.id) ?? 0) + TYPING_EVERY_MS - now;
    if (wait > 0) {
      this.typedLater(wait);
      return;
    }
    this.typingSent.set(c.id, now);
    try {
      await this.session.request({ case: "typing", value: t }, "done");
    } catch (e) {
      if (e instanceof ServerError && e.code === ErrorCode.RATE_LIMITED) {
        this.typedLater(e.retryAfterMs || TYPING_EVERY_MS);
        return;
      }
      if (!answerLost(e)) console.warn("typing notice failed", e);
    }
  }

  private typedLater(ms: number): void {
    clearTimeout(this.typingLater);
    this.typingLater = setTimeout(() => void this.typed(), ms);
  }

  /** Takes back one's own message `m` of `c`. */
  async recall(c: Conversation, m: Msg): Promise<void> {
    try {
      const r = await this.session.request({ case: "recall", value: { messageId: m.id } }, "recalled");
      this.conversation(r.conversationId).recall(r.messageId);
      this.changed(c);
    } catch (e) {
      fail("Recalling the message failed", e);
    }
  }

  /** After a reconnect: every send still unacknowledged, again, as a resend. */
  private async resendAll(): Promise<void> {
    for (const [id, entry] of [...this.outbox]) {
      const v = entry.body.value as { resend?: boolean };
      const body = { case: entry.body.case, value: { ...v, resend: true } } as BodyInit;
      await this.deliver(id, body);
    }
  }

  // ------------------------------------------------------------ views

  private changed(c: Conversation): void {
    if (this.active === c) {
      this.renderMessages(c, "bottom-if-near");
      this.markRead(c);
    }
    this.hooks.listsChanged();
  }

  private renderEmpty(): void {
    fill(this.el, h("div", { class: "empty", testid: "no-chat" }, "Pick a friend or a group to chat."));
  }

  private renderPane(c: Conversation): void {
    this.input.value = "";
    const compose = h(
      "form",
      { class: "compose", testid: "compose" },
      this.input,
      h("button", { type: "submit", testid: "send-btn" }, "Send"),
    );
    compose.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = this.input.value.trim();
      if (!text) return;
      this.input.value = "";
      void this.send(text);
    });
    const main = h(
      "section",
      { class: "chat", testid: "chat", data: { conversation: c.id } },
      h("header", { class: "chat-head" }, this.titleEl, this.typingEl),
      h("div", { class: "older" }, this.olderBtn),
      this.listEl,
      compose,
    );
    const group = c.ref.kind === "group";
    fill(this.el, h("div", { class: group ? "chat-wrap with-panel" : "chat-wrap" }, main, group ? this.panelEl : null));
    this.renderActive(true);
    this.input.focus();
  }

  /** Redraws the open conversation (title, messages, panel). */
  renderActive(toBottom = false): void {
    const c = this.active;
    if (!c) return;
    this.titleEl.textContent = this.hooks.title(c.ref);
    this.renderTyping(c);
    this.renderMessages(c, toBottom ? "bottom" : "bottom-if-near");
    this.refreshPanel();
  }

  /** "X is typing…" in the header while a notice is fresh. */
  private renderTyping(c: Conversation): void {
    const now = Date.now();
    for (const [who, until] of c.typing) if (until <= now) c.typing.delete(who);
    const names = [...c.typing.keys()].map((u) => this.users.nameOf(u));
    this.typingEl.textContent = names.length ? typingText(names) : "";
    clearTimeout(this.typingTimer);
    if (names.length) {
      const next = Math.min(...c.typing.values()) - now;
      this.typingTimer = setTimeout(() => {
        if (this.active === c) this.renderTyping(c);
      }, next + 50);
    }
  }

  private renderMessages(c: Conversation, scroll: "bottom" | "bottom-if-near" | "keep"): void {
    const list = this.listEl;
    const fromBottom = list.scrollHeight - list.scrollTop;
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const me = this.session.userId;
    const group = c.ref.kind === "group";
    const sorted = c.sorted();
    // "Seen" goes under the newest of one's own messages the other user has read.
    let seen: Msg | undefined;
    if (!group && c.peerReadSeq > 0n) {
      for (const m of sorted) if (m.sender === me && m.seq !== 0n && m.seq <= c.peerReadSeq && !m.recalled) seen = m;
    }
    const now = Date.now();
    const items = sorted.map((m) => {
      const mine = m.sender === me;
      const state = m.state === "sent" ? null : m.state === "sending" ? "sending…" : `not sent: ${m.error ?? ""}`;
      const canRecall = mine && !m.recalled && m.state === "sent" && m.id !== 0n && now - Number(m.time) < RECALL_WINDOW_MS;
      const recallBtn = canRecall
        ? h("button", { type: "button", class: "link recall", testid: "recall-btn", title: "Take this message back" }, "Recall")
        : null;
      recallBtn?.addEventListener("click", () => void this.recall(c, m));
      return h(
        "li",
        {
          class: `msg ${mine ? "mine" : "theirs"} ${m.state}${m.recalled ? " recalled" : ""}`,
          testid: "message",
          data: { id: String(m.id), seq: String(m.seq), sender: this.users.nameOf(m.sender), state: m.state, recalled: String(m.recalled) },
        },
        !mine || group ? h("span", { class: "sender", testid: "message-sender" }, mine ? "you" : this.users.nameOf(m.sender)) : null,
        m.recalled
          ? h("span", { class: "body recalled", testid: "message-recalled" }, mine ? "You recalled this message" : "This message was recalled")
          : h("span", { class: "body", testid: "message-body" }, m.body),
        h(
          "span",
          { class: "meta" },
          timeOf(m.time),
          state ? ` · ${state}` : "",
          m === seen ? h("span", { class: "seen", testid: "seen" }, " · seen") : null,
          recallBtn ? " · " : null,
          recallBtn,
        ),
      );
    });
    fill(list, items.length ? items : [h("li", { class: "hint", testid: "no-messages" }, c.historyLoaded ? "No messages yet." : "Loading…")]);
    this.olderBtn.hidden = !c.hasOlder;
    this.renderTyping(c);
    if (scroll === "bottom" || (scroll === "bottom-if-near" && nearBottom)) list.scrollTop = list.scrollHeight;
    else if (scroll === "keep") list.scrollTop = list.scrollHeight - fromBottom;
  }
}

function typingText(names: string[]): string {
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

function newClientMsgId(): string {
  const r = crypto.getRandomValues(new Uint32Array(3));
  return `w${Date.now().toString(36)}-${[...r].map((x) => x.toString(36)).join("")}`;
}
