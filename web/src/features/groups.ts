// Groups: my groups, create one, ask to join one (by id: the protocol
// joins by group id), invitations to me, and for an open group its panel:
// members, join requests (owner and admins approve or deny), invite by
// name, leave or delete. Pushes: GroupEvent.

import { GroupEventKind, GroupRole } from "../gen/client_pb";
import type { GroupEvent, GroupInfo, InviteInfo, JoinRequestInfo, MemberInfo } from "../gen/client_pb";
import { groupConversation } from "../protocol/frames";
import { allPages } from "../protocol/pages";
import type { Feature, Session } from "../session";
import { fill, form, h } from "../ui/dom";
import { attempt, notify } from "../ui/status";
import type { Users } from "./users";

export interface GroupsHooks {
  open(groupId: bigint): void;
  summary(groupId: bigint): { unread: number; preview: string };
  activeGroup(): bigint;
  /** The open group's panel needs redrawing. */
  panelChanged(): void;
  /** A group is gone for me (left, removed, deleted). */
  gone(groupId: bigint): void;
}

const ROLE_NAMES: Record<GroupRole, string> = {
  [GroupRole.UNSPECIFIED]: "member",
  [GroupRole.MEMBER]: "member",
  [GroupRole.ADMIN]: "admin",
  [GroupRole.OWNER]: "owner",
};

interface PanelView {
  root: HTMLElement;
  /** The group's card and, for its owner and admins, the join requests. */
  top: HTMLElement;
  /** Invite by name: shown to the owner and admins. */
  invite: HTMLElement;
  /** Members and the leave (or delete) button. */
  rest: HTMLElement;
}

export class Groups implements Feature {
  readonly groups = new Map<bigint, GroupInfo>();
  private invites: InviteInfo[] = [];
  private members = new Map<bigint, MemberInfo[]>();
  private joinRequests = new Map<bigint, JoinRequestInfo[]>();
  private readonly createForm: HTMLFormElement;
  private readonly joinForm: HTMLFormElement;
  /** Each open group's panel, built once (see `panel`). */
  private views = new Map<bigint, PanelView>();
  /** What render() redraws; the heading and the forms stay put. */
  private readonly listsEl = h("div", { class: "lists" });

  constructor(
    private readonly session: Session,
    private readonly users: Users,
    private readonly el: HTMLElement,
    private readonly hooks: GroupsHooks,
  ) {
    session.pushes.on("groupEvent", (e) => this.onEvent(e));
    this.createForm = form(
      "create-group-form",
      [{ name: "name", placeholder: "New group name", testid: "create-group-name" }],
      { label: "Create", testid: "create-group-btn" },
      async (v, f) => {
        if (!v.name) return;
        const g = await attempt(`Creating group ${v.name}`, () =>
          this.session.request({ case: "createGroup", value: { name: v.name } }, "group"),
        );
        if (!g) return;
        f.reset();
        this.groups.set(g.groupId, g);
        notify(`Group ${g.name} created (id ${g.groupId})`, "ok");
        this.render();
        this.hooks.open(g.groupId);
      },
    );
    this.joinForm = form(
      "join-group-form",
      [
        { name: "id", placeholder: "Group id", testid: "join-group-id" },
        { name: "note", placeholder: "Note (optional)", testid: "join-group-note", required: false },
      ],
      { label: "Ask to join", testid: "join-group-btn" },
      async (v, f) => {
        if (!/^\d+$/.test(v.id)) {
          notify("A group is joined by its id (a number the owner can tell you)", "error");
          return;
        }
        const groupId = BigInt(v.id);
        const done = await attempt(`Asking to join group ${v.id}`, () =>
          this.session.request({ case: "joinGroup", value: { groupId, note: v.note } }, "done"),
        );
        if (done === undefined) return;
        f.reset();
        notify(`Asked to join group ${v.id}; waiting for its owner`, "ok");
      },
    );
    // Built once: redrawing the lists on every push must not take a form
    // from under a user typing in it (focus, or a click half done).
    fill(this.el, h("h3", null, "Groups"), this.createForm, this.joinForm, this.listsEl);
    this.render();
  }

  async start(): Promise<void> {
    await Promise.all([this.loadGroups(), this.loadInvites()]);
    this.members.clear();
    this.joinRequests.clear();
    this.render();
    this.hooks.panelChanged();
  }

  reset(): void {
    this.groups.clear();
    this.views.clear();
    this.invites = [];
    this.members.clear();
    this.joinRequests.clear();
    this.render();
  }

  nameOf(groupId: bigint): string {
    return this.groups.get(groupId)?.name ?? `group ${groupId}`;
  }

  private async loadGroups(): Promise<void> {
    const list = await allPages(
      (page) => this.session.request({ case: "listGroups", value: { page } }, "groups"),
      (r) => r.groups,
    );
    this.groups.clear();
    for (const g of list) this.groups.set(g.groupId, g);
  }

  private async loadInvites(): Promise<void> {
    this.invites = await allPages(
      (page) => this.session.request({ case: "listInvites", value: { page } }, "invites"),
      (r) => r.invites,
    );
    for (const i of this.invites) this.users.learn(i.by);
  }

  private async loadMembers(groupId: bigint): Promise<void> {
    const list = await allPages(
      (page) => this.session.request({ case: "listMembers", value: { groupId, page } }, "members"),
      (r) => r.members,
    );
    for (const m of list) this.users.learn(m.user);
    this.members.set(groupId, list);
    if (this.canManage(groupId)) await this.loadJoinRequests(groupId);
  }

  private async loadJoinRequests(groupId: bigint): Promise<void> {
    const list = await allPages(
      (page) => this.session.request({ case: "listJoinRequests", value: { groupId, page } }, "joinRequests"),
      (r) => r.requests,
    );
    for (const r of list) this.users.learn(r.user);
    this.joinRequests.set(groupId, list);
  }

  private myRole(groupId: bigint): GroupRole {
    const g = this.groups.get(groupId);
    if (g && g.owner === this.session.userId) return GroupRole.OWNER;
    const me = this.members.get(groupId)?.find((m) => m.user?.userId === this.session.userId);
    return me?.role ?? GroupRole.MEMBER;
  }

  private canManage(groupId: bigint): boolean {
    const r = this.myRole(groupId);
    return r === GroupRole.OWNER || r === GroupRole.ADMIN;
  }

  private async onEvent(e: GroupEvent): Promise<void> {
    this.users.learn(e.user);
    const who = e.user?.name ?? "someone";
    const by = e.by !== 0n ? this.users.nameOf(e.by) : "";
    const group = e.groupName || this.nameOf(e.groupId);
    const aboutMe = e.user?.userId === this.session.userId;
    switch (e.kind) {
      case GroupEventKind.JOIN_REQUESTED:
        notify(`${who} asks to join ${group}${e.note ? `: “${e.note}”` : ""}`);
        await this.loadJoinRequests(e.groupId);
        break;
      case GroupEventKind.JOIN_APPROVED:
        notify(`You joined ${group}${by ? ` (approved by ${by})` : ""}`, "ok");
        await this.loadGroups();
        break;
      case GroupEventKind.JOIN_DENIED:
        notify(`Your request to join ${group} was denied`, "error");
        break;
      case GroupEventKind.MEMBER_JOINED:
        if (aboutMe) await this.loadGroups();
        else notify(`${who} joined ${group}`);
        await this.refreshGroup(e.groupId);
        break;
      case GroupEventKind.MEMBER_LEFT:
      case GroupEventKind.MEMBER_REMOVED:
        if (aboutMe) {
          notify(e.kind === GroupEventKind.MEMBER_LEFT ? `You left ${group}` : `You were removed from ${group}`);
          this.drop(e.groupId);
        } else {
          notify(`${who} ${e.kind === GroupEventKind.MEMBER_LEFT ? "left" : "was removed from"} ${group}`);
          await this.refreshGroup(e.groupId);
        }
        break;
      case GroupEventKind.ADMIN_PROMOTED:
        notify(`${aboutMe ? "You are" : `${who} is`} now an admin of ${group}`);
        await this.refreshGroup(e.groupId);
        break;
      case GroupEventKind.GROUP_DELETED:
        notify(`${group} was deleted`);
        this.drop(e.groupId);
        break;
      case GroupEventKind.INVITED:
        notify(`${by || "Someone"} invites you to ${group}`);
        await this.loadInvites();
        break;
      case GroupEventKind.INVITE_DECLINED:
        notify(`${who} declined your invitation to ${group}`);
        break;
      default:
        await this.loadGroups();
    }
    this.render();
    this.hooks.panelChanged();
  }

  /** Reloads members (and join requests) of a group whose panel was shown. */
  private async refreshGroup(groupId: bigint): Promise<void> {
    if (this.members.has(groupId) && this.groups.has(groupId)) await this.loadMembers(groupId);
  }

  private drop(groupId: bigint): void {
    this.groups.delete(groupId);
    this.views.delete(groupId);
    this.members.delete(groupId);
    this.joinRequests.delete(groupId);
    this.hooks.gone(groupId);
  }

  private async respondJoin(r: JoinRequestInfo, accept: boolean): Promise<void> {
    const name = r.user?.name ?? "?";
    const done = await attempt(`${accept ? "Approving" : "Denying"} ${name}`, () =>
      this.session.request(
        { case: "respondJoin", value: { groupId: r.groupId, userId: r.user?.userId ?? 0n, accept } },
        "done",
      ),
    );
    if (done === undefined) return;
    notify(`${accept ? "Approved" : "Denied"} ${name}`, "ok");
    await attempt("Refreshing the group", () => this.loadMembers(r.groupId));
    this.hooks.panelChanged();
  }

  private async respondInvite(i: InviteInfo, accept: boolean): Promise<void> {
    const groupId = i.group?.groupId ?? 0n;
    const done = await attempt(`${accept ? "Accepting" : "Declining"} the invitation`, () =>
      this.session.request({ case: "respondInvite", value: { groupId, accept } }, "done"),
    );
    if (done === undefined) return;
    await attempt("Refreshing groups", () => Promise.all([this.loadGroups(), this.loadInvites()]));
    this.render();
    if (accept) this.hooks.open(groupId);
  }

  private async leaveOrDelete(groupId: bigint): Promise<void> {
    const owner = this.myRole(groupId) === GroupRole.OWNER;
    const name = this.nameOf(groupId);
    if (!confirm(owner ? `Delete ${name} for every member?` : `Leave ${name}?`)) return;
    const done = await attempt(owner ? `Deleting ${name}` : `Leaving ${name}`, () =>
      owner
        ? this.session.request({ case: "deleteGroup", value: { groupId } }, "done")
        : this.session.request({ case: "leaveGroup", value: { groupId } }, "done"),
    );
    if (done === undefined) return;
    notify(owner ? `Deleted ${name}` : `Left ${name}`, "ok");
    this.drop(groupId);
    this.render();
  }

  render(): void {
    const active = this.hooks.activeGroup();
    const invites = this.invites.map((i) =>
      h(
        "li",
        { class: "request", testid: "invite", data: { group: i.group?.name ?? "" } },
        h("span", { class: "name" }, i.group?.name ?? "?"),
        h("span", { class: "note" }, `from ${i.by?.name ?? "?"}`),
        h("span", { class: "actions" },
          h("button", { type: "button", testid: "accept-invite", onclick: () => void this.respondInvite(i, true) }, "Join"),
          h("button", { type: "button", class: "secondary", testid: "decline-invite", onclick: () => void this.respondInvite(i, false) }, "Decline"),
        ),
      ),
    );
    const groups = [...this.groups.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((g) => {
        const s = this.hooks.summary(g.groupId);
        return h(
          "li",
          {
            class: `row group${active === g.groupId ? " active" : ""}`,
            testid: "group",
            data: { name: g.name, id: String(g.groupId) },
            onclick: () => this.hooks.open(g.groupId),
            title: `Open ${g.name}`,
          },
          h("span", { class: "dot group-dot", "aria-hidden": "true" }, "#"),
          h("span", { class: "who" },
            h("span", { class: "name" }, g.name),
            s.preview ? h("span", { class: "preview", testid: "preview" }, s.preview) : null,
          ),
          s.unread ? h("span", { class: "badge", testid: "unread" }, String(s.unread)) : null,
        );
      });
    fill(
      this.listsEl,
      invites.length ? h("div", { class: "sub" }, h("h4", null, "Invitations"), h("ul", { class: "list", testid: "invites" }, invites)) : null,
      h("ul", { class: "list", testid: "groups" }, groups.length ? groups : h("li", { class: "hint" }, "No groups yet.")),
    );
  }

  /** The side panel of group `groupId`: loads members the first time. */
  panel(groupId: bigint, el: HTMLElement): void {
    const g = this.groups.get(groupId);
    if (!g) {
      fill(el, h("p", { class: "hint" }, "You are not a member of this group."));
      return;
    }
    const members = this.members.get(groupId);
    if (!members) {
      fill(el, h("p", { class: "hint" }, "Loading members…"));
      void attempt("Loading members", () => this.loadMembers(groupId)).then(() => {
        if (this.members.has(groupId)) this.panel(groupId, el);
      });
      return;
    }
    // The panel is redrawn on every message of the open group: only its
    // lists are replaced, the invite form stays in place while typed in.
    let view = this.views.get(groupId);
    if (!view) {
      view = this.panelView(groupId, g.name);
      this.views.set(groupId, view);
    }
    if (el.firstElementChild !== view.root || el.childElementCount !== 1) fill(el, view.root);
    const manage = this.canManage(groupId);
    const requests = manage ? (this.joinRequests.get(groupId) ?? []) : [];
    const owner = this.myRole(groupId) === GroupRole.OWNER;
    fill(
      view.top,
      h("div", { class: "group-card", testid: "group-panel", data: { id: String(groupId) } },
        h("h3", null, g.name),
        h("p", { class: "muted" }, "Group id ", h("code", { testid: "group-id" }, String(groupId)),
          " — others ask to join with it. Conversation ", h("code", null, groupConversation(groupId))),
        h("p", { class: "muted" }, `You are ${ROLE_NAMES[this.myRole(groupId)]}.`),
      ),
      manage
        ? h("div", { class: "sub" },
            h("h4", null, `Join requests (${requests.length})`),
            h("ul", { class: "list", testid: "join-requests" },
              requests.length
                ? requests.map((r) =>
                    h("li", { class: "request", testid: "join-request", data: { name: r.user?.name ?? "" } },
                      h("span", { class: "name" }, r.user?.name ?? "?"),
                      r.note ? h("span", { class: "note" }, `“${r.note}”`) : null,
                      h("span", { class: "actions" },
                        h("button", { type: "button", testid: "approve-join", onclick: () => void this.respondJoin(r, true) }, "Approve"),
                        h("button", { type: "button", class: "secondary", testid: "deny-join", onclick: () => void this.respondJoin(r, false) }, "Deny"),
                      ),
                    ),
                  )
                : h("li", { class: "hint" }, "None waiting."),
            ),
          )
        : null,
    );
    view.invite.hidden = !manage;
    fill(
      view.rest,
      h("div", { class: "sub" },
        h("h4", null, `Members (${members.length})`),
        h("ul", { class: "list", testid: "members" },
          members.map((m) =>
            h("li", { class: "member", testid: "member", data: { name: m.user?.name ?? "", role: ROLE_NAMES[m.role] } },
              h("span", { class: "name" }, m.user?.name ?? "?"),
              m.role === GroupRole.OWNER || m.role === GroupRole.ADMIN ? h("span", { class: "role" }, ROLE_NAMES[m.role]) : null,
            ),
          ),
        ),
      ),
      h("button", { type: "button", class: "danger", testid: owner ? "delete-group" : "leave-group", onclick: () => void this.leaveOrDelete(groupId) },
        owner ? "Delete group" : "Leave group"),
    );
  }

  /** The parts of one group's panel that are built once. */
  private panelView(groupId: bigint, name: string): PanelView {
    const invite = form(
      "invite-form",
      [{ name: "name", placeholder: "Invite by user name", testid: "invite-name" }],
      { label: "Invite", testid: "invite-btn" },
      async (v, f) => {
        if (!v.name) return;
        const done = await attempt(`Inviting ${v.name}`, () =>
          this.session.request({ case: "invite", value: { groupId, user: { userId: 0n, name: v.name } } }, "done"),
        );
        if (done === undefined) return;
        f.reset();
        notify(`Invited ${v.name} to ${this.groups.get(groupId)?.name ?? name}`, "ok");
      },
    );
    const top = h("div");
    const inviteBox = h("div", { class: "sub" }, invite);
    const rest = h("div");
    return { root: h("div", { class: "group-view" }, top, inviteBox, rest), top, invite: inviteBox, rest };
  }
}
