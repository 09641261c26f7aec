// Friends: the list with live presence, friend requests by name (sent,
// incoming with accept/decline), and their pushes (FriendEvent,
// PresenceChanged).

import { FriendEventKind } from "../gen/client_pb";
import type { FriendInfo, FriendRequestInfo, PresenceChanged } from "../gen/client_pb";
import { allPages } from "../protocol/pages";
import type { Feature, Session } from "../session";
import { fill, form, h } from "../ui/dom";
import { attempt, notify } from "../ui/status";
import type { Users } from "./users";

export interface FriendsHooks {
  open(peer: bigint): void;
  /** The 1:1 conversation with `peer`: unread count and last message. */
  summary(peer: bigint): { unread: number; preview: string };
  /** Which peer's conversation is open (0 for none). */
  activePeer(): bigint;
}

export class Friends implements Feature {
  readonly friends = new Map<bigint, FriendInfo>();
  private incoming: FriendRequestInfo[] = [];
  private outgoing: FriendRequestInfo[] = [];
  private readonly addForm: HTMLFormElement;
  /** What render() redraws; the heading and the form stay put. */
  private readonly listsEl = h("div", { class: "lists" });

  constructor(
    private readonly session: Session,
    private readonly users: Users,
    private readonly el: HTMLElement,
    private readonly hooks: FriendsHooks,
  ) {
    session.pushes.on("friendEvent", async (e) => {
      const who = e.user?.name ?? "someone";
      this.users.learn(e.user);
      switch (e.kind) {
        case FriendEventKind.REQUESTED:
          notify(`${who} wants to be your friend${e.note ? `: “${e.note}”` : ""}`);
          await this.loadRequests();
          break;
        case FriendEventKind.ACCEPTED:
          notify(`${who} accepted: you are friends now`, "ok");
          await Promise.all([this.loadFriends(), this.loadRequests()]);
          break;
        case FriendEventKind.DECLINED:
          notify(`${who} declined your friend request`);
          await this.loadRequests();
          break;
        case FriendEventKind.REMOVED:
          notify(`${who} removed you from their friends`);
          if (e.user) this.friends.delete(e.user.userId);
          break;
        default:
          await Promise.all([this.loadFriends(), this.loadRequests()]);
      }
      this.render();
    });
    session.pushes.on("presence", (p) => this.onPresence(p));
    this.addForm = form(
      "add-friend-form",
      [
        { name: "name", placeholder: "User name", testid: "add-friend-name" },
        { name: "note", placeholder: "Note (optional)", testid: "add-friend-note", required: false },
      ],
      { label: "Add", testid: "add-friend-btn" },
      async (v, f) => {
        if (!v.name) return;
        const reply = await attempt(`Friend request to ${v.name}`, () =>
          this.session.request(
            { case: "addFriend", value: { user: { userId: 0n, name: v.name }, note: v.note } },
            "addFriendOk",
          ),
        );
        if (!reply) return;
        f.reset();
        if (reply.becameFriends) {
          notify(`You and ${v.name} are friends now`, "ok");
          await this.loadFriends();
        } else {
          notify(`Friend request sent to ${v.name}`, "ok");
        }
        await this.loadRequests();
        this.render();
      },
    );
    // Built once: redrawing the lists on every push must not take the
    // form from under a user typing in it (focus, or a click half done).
    fill(this.el, h("h3", null, "Friends"), this.addForm, this.listsEl);
    this.render();
  }

  async start(): Promise<void> {
    await Promise.all([this.loadFriends(), this.loadRequests()]);
    this.render();
  }

  reset(): void {
    this.friends.clear();
    this.incoming = [];
    this.outgoing = [];
    this.render();
  }

  isFriend(id: bigint): boolean {
    return this.friends.has(id);
  }

  private async loadFriends(): Promise<void> {
    const list = await allPages(
      (page) => this.session.request({ case: "listFriends", value: { page } }, "friends"),
      (r) => r.friends,
    );
    this.friends.clear();
    for (const f of list) {
      if (!f.user) continue;
      this.users.learn(f.user);
      this.friends.set(f.user.userId, f);
    }
  }

  private async loadRequests(): Promise<void> {
    const incoming: FriendRequestInfo[] = [];
    const outgoing: FriendRequestInfo[] = [];
    await allPages(
      (page) => this.session.request({ case: "listFriendRequests", value: { page } }, "friendRequests"),
      (r) => {
        incoming.push(...r.incoming);
        outgoing.push(...r.outgoing);
        return [];
      },
    );
    for (const r of [...incoming, ...outgoing]) {
      this.users.learn(r.from);
      this.users.learn(r.to);
    }
    this.incoming = incoming;
    this.outgoing = outgoing;
  }

  private onPresence(p: PresenceChanged): void {
    const f = this.friends.get(p.userId);
    if (!f) return;
    f.online = p.online;
    f.devices = p.devices;
    this.render();
  }

  private async respond(r: FriendRequestInfo, accept: boolean): Promise<void> {
    const name = r.from?.name ?? "";
    const done = await attempt(`${accept ? "Accepting" : "Declining"} ${name}`, () =>
      this.session.request(
        { case: "respondFriend", value: { user: { userId: r.from?.userId ?? 0n, name }, accept } },
        "done",
      ),
    );
    if (done === undefined) return;
    notify(accept ? `You and ${name} are friends now` : `Declined ${name}`, "ok");
    await attempt("Refreshing friends", () => Promise.all([this.loadFriends(), this.loadRequests()]));
    this.render();
  }

  render(): void {
    const incoming = this.incoming.map((r) => {
      const name = r.from?.name ?? "?";
      return h(
        "li",
        { class: "request", testid: "friend-request", data: { name } },
        h("span", { class: "name" }, name),
        r.note ? h("span", { class: "note" }, `“${r.note}”`) : null,
        h("span", { class: "actions" },
          h("button", { type: "button", testid: "accept-friend", onclick: () => void this.respond(r, true) }, "Accept"),
          h("button", { type: "button", class: "secondary", testid: "decline-friend", onclick: () => void this.respond(r, false) }, "Decline"),
        ),
      );
    });
    const outgoing = this.outgoing.map((r) =>
      h("li", { class: "request outgoing", testid: "outgoing-request", data: { name: r.to?.name ?? "" } },
        h("span", { class: "name" }, r.to?.name ?? "?"), h("span", { class: "note" }, "waiting for an answer")),
    );
    const active = this.hooks.activePeer();
    const friends = [...this.friends.values()]
      .sort((a, b) => (a.user?.name ?? "").localeCompare(b.user?.name ?? ""))
      .map((f) => {
        const u = f.user!;
        const s = this.hooks.summary(u.userId);
        const devices = f.devices.length > 1 ? ` (${f.devices.length} devices)` : "";
        return h(
          "li",
          {
            class: `row friend ${f.online ? "online" : "offline"}${active === u.userId ? " active" : ""}`,
            testid: "friend",
            data: { name: u.name, online: String(f.online) },
            onclick: () => this.hooks.open(u.userId),
            title: `Chat with ${u.name}`,
          },
          h("span", { class: "dot", "aria-hidden": "true" }),
          h("span", { class: "who" },
            h("span", { class: "name" }, u.name),
            h("span", { class: "presence", testid: "presence" }, (f.online ? "online" : "offline") + devices),
            s.preview ? h("span", { class: "preview", testid: "preview" }, s.preview) : null,
          ),
          s.unread ? h("span", { class: "badge", testid: "unread" }, String(s.unread)) : null,
        );
      });
    fill(
      this.listsEl,
      incoming.length ? h("div", { class: "sub" }, h("h4", null, "Requests to you"), h("ul", { class: "list", testid: "incoming-requests" }, incoming)) : null,
      outgoing.length ? h("div", { class: "sub" }, h("h4", null, "Sent"), h("ul", { class: "list", testid: "outgoing-requests" }, outgoing)) : null,
      h("ul", { class: "list", testid: "friends" }, friends.length ? friends : h("li", { class: "hint" }, "No friends yet: add one by name.")),
    );
  }
}
