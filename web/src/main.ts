// Confab's web client: wires the session, the features and the screens.
//
// Adding a feature (read receipts, typing, recall...): a module under
// features/ that registers its pushes on `session.pushes`, implements
// `Feature` (start/reset) and is added with `session.add(...)` below.

import "./style.css";
import { gatewayUrl } from "./config";
import { loginScreen } from "./features/auth";
import { Chat } from "./features/chat";
import { Friends } from "./features/friends";
import { Groups } from "./features/groups";
import { Users } from "./features/users";
import { Session } from "./session";
import type { ConnState } from "./session";
import { fill, h } from "./ui/dom";
import { fail, mountStatus, notify } from "./ui/status";
import { codeName } from "./protocol/errors";
import { directConversation, groupConversation } from "./protocol/frames";

const session = new Session(gatewayUrl());

// ------------------------------------------------------------ layout

const statusLine = h("div", { class: "status", testid: "status", role: "status", "aria-live": "polite" });
const toasts = h("div", { class: "toasts", testid: "toasts" });
mountStatus(statusLine, toasts);

const connState = h("span", { class: "conn offline", testid: "conn-state" }, "offline");
const meEl = h("span", { class: "me", testid: "me" });
const logoutBtn = h("button", { type: "button", class: "secondary", testid: "logout-btn", hidden: true }, "Log out");
const header = h("header", { class: "top" }, h("span", { class: "brand" }, "Confab"), meEl, connState, logoutBtn);

const friendsEl = h("section", { class: "panel", testid: "friends-panel" });
const groupsEl = h("section", { class: "panel", testid: "groups-panel" });
const othersEl = h("section", { class: "panel", testid: "others-panel" });
const chatEl = h("main", { class: "main", testid: "main" });
const appScreen = h(
  "div",
  { class: "app-screen", testid: "app-screen", hidden: true },
  h("nav", { class: "sidebar" }, friendsEl, groupsEl, othersEl),
  chatEl,
);
const login = loginScreen(session);
document.body.replaceChildren(header, statusLine, login, appScreen, toasts);

// ------------------------------------------------------------ features

const users = new Users(session);
let friends!: Friends;
let groups!: Groups;

const chat = new Chat(session, users, chatEl, {
  title: (ref) => {
    if (ref.kind === "direct") return users.nameOf(ref.peer);
    if (ref.kind === "group") return `# ${groups.nameOf(ref.groupId)}`;
    return "?";
  },
  listsChanged: () => {
    friends.render();
    groups.render();
    renderOthers();
  },
  groupPanel: (groupId, el) => groups.panel(groupId, el),
});

friends = new Friends(session, users, friendsEl, {
  open: (peer) => chat.openDirect(peer),
  summary: (peer) => chat.summary(directConversation(session.userId, peer)),
  activePeer: () => (chat.active?.ref.kind === "direct" ? chat.active.ref.peer : 0n),
});

groups = new Groups(session, users, groupsEl, {
  open: (groupId) => chat.openGroup(groupId),
  summary: (groupId) => chat.summary(groupConversation(groupId)),
  activeGroup: () => (chat.active?.ref.kind === "group" ? chat.active.ref.groupId : 0n),
  panelChanged: () => {
    chat.refreshPanel();
    if (chat.active?.ref.kind === "group") chat.renderActive();
  },
  gone: (groupId) => chat.forget(groupConversation(groupId)),
});

// Order matters: names first, then the lists, then the messages (sync).
session.add(users);
session.add(friends);
session.add(groups);
session.add(chat);

session.pushes.onHandlerError = (kind, e) => fail(`Handling the server's ${kind} update failed`, e);

/** Conversations with someone who is not (or no longer) a friend. */
function renderOthers(): void {
  const rows = [...chat.conversations.values()]
    .filter((c) => c.ref.kind === "direct" && !friends.isFriend(c.ref.peer) && c.messages.size > 0)
    .map((c) => {
      const peer = c.ref.kind === "direct" ? c.ref.peer : 0n;
      const s = chat.summary(c.id);
      return h(
        "li",
        {
          class: `row${chat.active === c ? " active" : ""}`,
          testid: "other-chat",
          data: { name: users.nameOf(peer) },
          onclick: () => void chat.open(c.id),
        },
        h("span", { class: "who" }, h("span", { class: "name" }, users.nameOf(peer)), s.preview ? h("span", { class: "preview" }, s.preview) : null),
        s.unread ? h("span", { class: "badge", testid: "unread" }, String(s.unread)) : null,
      );
    });
  if (rows.length === 0) fill(othersEl);
  else fill(othersEl, h("h3", null, "Other chats"), h("ul", { class: "list" }, rows));
}

// ------------------------------------------------------------ screens

const STATE_WORDS: Record<ConnState, string> = {
  offline: "offline",
  connecting: "connecting…",
  online: "online",
  reconnecting: "reconnecting…",
};

session.onState = (s) => {
  connState.textContent = STATE_WORDS[s];
  connState.className = `conn ${s}`;
  connState.dataset.state = s;
};

session.onLogin = () => {
  const me = session.me!;
  meEl.textContent = `${me.name} · ${session.device}`;
  meEl.dataset.name = me.name;
  login.hidden = true;
  appScreen.hidden = false;
  logoutBtn.hidden = false;
  document.title = `${me.name} — Confab`;
};

session.onLogout = () => {
  meEl.textContent = "";
  delete meEl.dataset.name;
  login.hidden = false;
  appScreen.hidden = true;
  logoutBtn.hidden = true;
  document.title = "Confab";
  renderOthers();
};

logoutBtn.addEventListener("click", () => {
  void session.logout().then(
    () => notify("Logged out", "ok"),
    (e) => fail("Logging out", e),
  );
});

window.addEventListener("unhandledrejection", (ev) => fail("Unexpected error", ev.reason));

// A reload of this tab resumes its session (the token is kept per tab).
void session.resumeSaved().then(
  (resumed) => {
    if (resumed) notify(`Welcome back, ${session.me?.name}`, "ok");
  },
  (e) => fail("Resuming the session failed", e),
);

// For debugging from the console.
(window as unknown as { confab: unknown }).confab = { session, chat, friends, groups, codeName };
