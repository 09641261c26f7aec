// Browser test of the web client against a running Confab cluster: two
// users in two browser contexts (two devices) register, befriend, see each
// other's presence, chat both ways, one leaves and comes back (sync with its
// unread count, history scroll-back, read receipts), typing and recall, a
// second device of the same user (unread counts follow reads on the other),
// then a group: create, ask to join, approve, chat.
//
// Env:
//   CONFAB_WEB_URL  the page (e.g. the gateway's `/`, or a static server of
//                   web/dist); when unset, web/dist is served here on a free port
//   CONFAB_WS_URL   the gateway's WebSocket URL, passed as ?ws= (needed when the
//                   page is not served by the gateway; default with no
//                   CONFAB_WEB_URL: ws://127.0.0.1:8201/ws, the local cluster)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   CONFAB_SCREENSHOTS  where screenshots go (default web/screenshots)
//   CONFAB_HEADED=1 show the browser
//
// Every step waits for visible text with a timeout; the first failing step
// fails the run and the later ones are skipped.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { DIST, serve } from "./serve.mjs";

const TIMEOUT = Number(process.env.CONFAB_TEST_TIMEOUT_MS ?? 15_000);
const SHOTS = resolve(process.env.CONFAB_SCREENSHOTS ?? fileURLToPath(new URL("../screenshots", import.meta.url)));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** History page size the page is told to use, so scroll-back is exercised. */
const PAGE = 3;

const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
const ALICE = `alice${run}`;
const BOB = `bob${run}`;
const PASSWORD = `pw-${run}`;
const GROUP = `team${run}`;

let browser;
let staticServer;
let pageUrl;
const contexts = [];
let failed = false;

/** One step: skipped once an earlier step failed. */
function step(name, fn) {
  test(name, { timeout: TIMEOUT * 8 }, async (t) => {
    if (failed) {
      t.skip("an earlier step failed");
      return;
    }
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      await snapshotAll(`failure-${name.replace(/\W+/g, "-")}`).catch(() => {});
      throw e;
    }
  });
}

// ------------------------------------------------------------ helpers

const byTest = (page, id, name) =>
  page.locator(name === undefined ? `[data-testid="${id}"]` : `[data-testid="${id}"][data-name="${name}"]`);

/** Waits until `locator` (its first match) shows `text` (string or RegExp). */
async function expectText(locator, text, timeout = TIMEOUT) {
  const want = typeof text === "string" ? (s) => s.includes(text) : (s) => text.test(s);
  const deadline = Date.now() + timeout;
  let last = "";
  for (;;) {
    try {
      if ((await locator.count()) > 0) {
        last = (await locator.first().innerText({ timeout: 1000 })) ?? "";
        if (want(last) && (await locator.first().isVisible())) return last;
      }
    } catch {
      /* detached while re-rendered: look again */
    }
    if (Date.now() > deadline) {
      assert.fail(`expected ${locator} to show ${text} within ${timeout} ms; it shows ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function expectVisible(locator, timeout = TIMEOUT) {
  await locator.first().waitFor({ state: "visible", timeout });
}

/** Waits until some message in the open chat shows `text`. */
async function expectMessage(page, text, timeout = TIMEOUT) {
  await expectVisible(page.locator('[data-testid="message-body"]', { hasText: text }), timeout);
}

/** Waits until `locator` matches nothing. */
async function expectNone(locator, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const n = await locator.count();
    if (n === 0) return;
    if (Date.now() > deadline) assert.fail(`expected no ${locator} within ${timeout} ms; ${n} remain`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The message of the open chat that shows `text`. */
const messageWith = (page, text) => page.locator('[data-testid="message"]', { hasText: text });

async function expectNoMessage(page, text) {
  const n = await page.locator('[data-testid="message-body"]', { hasText: text }).count();
  assert.equal(n, 0, `did not expect a message ${text} yet`);
}

async function newDevice(label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  contexts.push(context);
  const page = await context.newPage();
  page.label = label;
  page.on("pageerror", (e) => console.error(`[${label}] page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") console.error(`[${label}] console: ${m.text()}`);
  });
  await page.goto(pageUrl);
  await expectVisible(byTest(page, "login-screen"));
  return { context, page };
}

async function enter(page, name, register) {
  await byTest(page, "login-name").fill(name);
  await byTest(page, "login-password").fill(PASSWORD);
  await byTest(page, register ? "register-btn" : "login-btn").click();
  await expectVisible(byTest(page, "app-screen"));
  await expectText(byTest(page, "me"), name);
  await expectText(byTest(page, "conn-state"), "online");
}

async function send(page, text) {
  await byTest(page, "compose-input").fill(text);
  await byTest(page, "send-btn").click();
  // Acknowledged: the message shows without "sending".
  await expectVisible(page.locator('[data-testid="message"][data-state="sent"]', { hasText: text }));
}

async function shot(page, name) {
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: resolve(SHOTS, `${name}.png`) });
}

async function snapshotAll(prefix) {
  let i = 0;
  for (const c of contexts) {
    for (const p of c.pages()) await shot(p, `${prefix}-${i++}`).catch(() => {});
  }
}

// ------------------------------------------------------------ setup

before(async () => {
  let base = process.env.CONFAB_WEB_URL;
  let ws = process.env.CONFAB_WS_URL;
  if (!base) {
    assert.ok(existsSync(resolve(DIST, "index.html")), "no web/dist: run `npm run build` first (or set CONFAB_WEB_URL)");
    staticServer = await serve(DIST, 0);
    base = staticServer.url;
    ws ??= "ws://127.0.0.1:8201/ws";
  }
  const u = new URL(base);
  if (ws) u.searchParams.set("ws", ws);
  u.searchParams.set("page", String(PAGE));
  pageUrl = u.toString();
  console.log(`# page ${pageUrl}; users ${ALICE}, ${BOB}`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: process.env.CONFAB_HEADED !== "1",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => (staticServer ? staticServer.server.close(r) : r()));
});

// ------------------------------------------------------------ the story

let alice;
let bob;

step("two devices register", async () => {
  alice = await newDevice("alice");
  bob = await newDevice("bob");
  await shot(alice.page, "login");
  await enter(alice.page, ALICE, true);
  await enter(bob.page, BOB, true);
});

step("server errors are shown in words", async () => {
  const p = alice.page;
  await byTest(p, "add-friend-name").fill(`nobody${run}`);
  await byTest(p, "add-friend-btn").click();
  await expectText(byTest(p, "status"), /No such user|USER_NOT_FOUND/);
  await expectText(byTest(p, "status"), "USER_NOT_FOUND");
});

step("a wrong password is refused in words", async () => {
  const { page } = await newDevice("intruder");
  await byTest(page, "login-name").fill(ALICE);
  await byTest(page, "login-password").fill("not the password");
  await byTest(page, "login-btn").click();
  await expectText(byTest(page, "status"), "Wrong user name or password");
  await expectVisible(byTest(page, "login-screen"));
  await page.context().close();
  contexts.splice(contexts.indexOf(page.context()), 1);
});

step("friend request, accept, presence online", async () => {
  const a = alice.page;
  const b = bob.page;
  await byTest(a, "add-friend-name").fill(BOB);
  await byTest(a, "add-friend-note").fill("hi, it's alice");
  await byTest(a, "add-friend-btn").click();
  await expectVisible(byTest(a, "outgoing-request", BOB));
  // Bob is told live and accepts.
  await expectText(byTest(b, "friend-request", ALICE), ALICE);
  await byTest(b, "friend-request", ALICE).locator('[data-testid="accept-friend"]').click();
  await expectText(byTest(b, "friend", ALICE).locator('[data-testid="presence"]'), "online");
  await expectText(byTest(a, "friend", BOB).locator('[data-testid="presence"]'), "online");
  assert.equal(await byTest(a, "outgoing-request", BOB).count(), 0);
});

step("chat both ways, live", async () => {
  const a = alice.page;
  const b = bob.page;
  await byTest(a, "friend", BOB).click();
  await expectText(byTest(a, "chat-title"), BOB);
  await send(a, `hello bob ${run}`);
  // Bob sees the new message on alice's row, then in the chat.
  await expectText(byTest(b, "friend", ALICE).locator('[data-testid="unread"]'), "1");
  await byTest(b, "friend", ALICE).click();
  await expectMessage(b, `hello bob ${run}`);
  await send(b, `hi alice ${run}`);
  await expectMessage(a, `hi alice ${run}`);
  // Bob's read mark reached the server: a message read before its
  // sequence was known is marked once the commit notice names it (on a
  // slower store that is after the reply), and alice sees it read.
  await expectVisible(messageWith(a, `hello bob ${run}`).locator('[data-testid="seen"]'));
});

step("offline: presence goes, messages wait, sync and scroll-back on return", async () => {
  const a = alice.page;
  await bob.context.close();
  contexts.splice(contexts.indexOf(bob.context), 1);
  await expectText(byTest(a, "friend", BOB).locator('[data-testid="presence"]'), "offline");
  for (const n of [1, 2, 3]) await send(a, `while away ${n} ${run}`);
  await shot(a, "chat");

  bob = await newDevice("bob-again");
  const b = bob.page;
  await enter(b, BOB, false);
  await expectText(byTest(a, "friend", BOB).locator('[data-testid="presence"]'), "online");
  // Sync brought the conversation: alice's row shows the last message and
  // the three bob has not read (the server's count: this device never held them).
  await expectText(byTest(b, "friend", ALICE).locator('[data-testid="preview"]'), `while away 3 ${run}`);
  await expectText(byTest(b, "friend", ALICE).locator('[data-testid="unread"]'), "3");
  await byTest(b, "friend", ALICE).click();
  // Opening it reads it: the badge goes, alice sees "seen" under her last one.
  await expectNone(byTest(b, "friend", ALICE).locator('[data-testid="unread"]'));
  await expectVisible(messageWith(a, `while away 3 ${run}`).locator('[data-testid="seen"]'));
  await shot(a, "receipts");
  for (const n of [1, 2, 3]) await expectMessage(b, `while away ${n} ${run}`);
  // The newest page holds PAGE messages; the older ones come on demand.
  await expectNoMessage(b, `hello bob ${run}`);
  await expectVisible(byTest(b, "load-older"));
  await byTest(b, "load-older").click();
  await expectMessage(b, `hello bob ${run}`);
  await expectMessage(b, `hi alice ${run}`);
  const order = await b.locator('[data-testid="message-body"]').allInnerTexts();
  assert.deepEqual(order, [
    `hello bob ${run}`,
    `hi alice ${run}`,
    `while away 1 ${run}`,
    `while away 2 ${run}`,
    `while away 3 ${run}`,
  ]);
  await send(b, `back again ${run}`);
  await expectMessage(a, `back again ${run}`);
  await shot(b, "friends-chat");
});

step("typing shows on the other side; a recalled message is gone everywhere", async () => {
  const a = alice.page;
  const b = bob.page;
  await byTest(b, "compose-input").fill("still typ");
  await expectText(byTest(a, "typing"), `${BOB} is typing`);
  await byTest(b, "compose-input").fill("");

  await send(a, `oops ${run}`);
  await expectMessage(b, `oops ${run}`);
  await messageWith(a, `oops ${run}`).locator('[data-testid="recall-btn"]').click();
  await expectText(byTest(a, "message-recalled"), "You recalled this message");
  await expectText(byTest(b, "message-recalled"), "This message was recalled");
  await expectNone(b.locator('[data-testid="message-body"]', { hasText: `oops ${run}` }));
  await expectNone(a.locator('[data-testid="message-body"]', { hasText: `oops ${run}` }));
  await shot(b, "recall");
});

step("a second device: unread counts follow what the other one read", async () => {
  const a = alice.page;
  const b = bob.page;
  const tablet = await newDevice("bob-tablet");
  const t = tablet.page;
  await enter(t, BOB, false);
  // Everything was read on the first device: nothing unread here.
  await expectText(byTest(t, "friend", ALICE).locator('[data-testid="preview"]'), "(recalled)");
  await expectNone(byTest(t, "friend", ALICE).locator('[data-testid="unread"]'));
  // A new message, read on the first device (its chat is open): the
  // tablet's badge goes with the receipt, and alice sees it seen.
  await send(a, `are you there ${run}`);
  await expectMessage(b, `are you there ${run}`);
  await expectVisible(messageWith(a, `are you there ${run}`).locator('[data-testid="seen"]'));
  await expectNone(byTest(t, "friend", ALICE).locator('[data-testid="unread"]'));
  await tablet.context.close();
  contexts.splice(contexts.indexOf(tablet.context), 1);
});

step("group: create, ask to join, approve, chat", async () => {
  const a = alice.page;
  const b = bob.page;
  await byTest(a, "create-group-name").fill(GROUP);
  // A push that redraws the lists (a message from bob) leaves the form
  // being typed in alone: its text and the focus stay.
  await send(b, `one moment ${run}`);
  await expectText(byTest(a, "friend", BOB).locator('[data-testid="preview"]'), `one moment ${run}`);
  assert.equal(await a.evaluate(() => document.activeElement?.getAttribute("data-testid")), "create-group-name");
  assert.equal(await byTest(a, "create-group-name").inputValue(), GROUP);
  await byTest(a, "create-group-btn").click();
  await expectText(byTest(a, "chat-title"), GROUP);
  await expectVisible(byTest(a, "group-panel"));
  const groupId = (await byTest(a, "group-id").innerText()).trim();
  assert.match(groupId, /^\d+$/);
  await expectVisible(byTest(a, "member", ALICE));

  await byTest(b, "join-group-id").fill(groupId);
  await byTest(b, "join-group-note").fill("let me in");
  await byTest(b, "join-group-btn").click();
  await expectText(byTest(b, "status"), `Asked to join group ${groupId}`);

  // The owner is told live and approves from the group's panel.
  await expectText(byTest(a, "join-request", BOB), BOB);
  await byTest(a, "join-request", BOB).locator('[data-testid="approve-join"]').click();
  await expectVisible(byTest(a, "member", BOB));
  // The requester's group list gets the group (JOIN_APPROVED push).
  await expectVisible(byTest(b, "group", GROUP));
  await byTest(b, "group", GROUP).click();
  await expectText(byTest(b, "chat-title"), GROUP);
  await expectVisible(byTest(b, "member", ALICE));

  await send(b, `hello group ${run}`);
  await expectMessage(a, `hello group ${run}`);
  await send(a, `welcome ${run}`);
  await expectMessage(b, `welcome ${run}`);
  await shot(a, "group");
});

step("log out returns to the login screen", async () => {
  const b = bob.page;
  await byTest(b, "logout-btn").click();
  await expectVisible(byTest(b, "login-screen"));
  await expectText(byTest(alice.page, "friend", BOB).locator('[data-testid="presence"]'), "offline");
});
