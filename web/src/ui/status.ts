// What the user is told: a status line that keeps the latest notice, and
// toasts for errors that fade after a while. Errors of the server (code and
// message) always end up here, in words.

import { errorText } from "../protocol/errors";
import { h } from "./dom";

export type Level = "info" | "ok" | "error";

let line: HTMLElement | null = null;
let stack: HTMLElement | null = null;

export function mountStatus(statusLine: HTMLElement, toasts: HTMLElement): void {
  line = statusLine;
  stack = toasts;
}

export function notify(text: string, level: Level = "info"): void {
  if (level === "error") console.warn(text);
  if (line) {
    line.textContent = text;
    line.className = `status ${level}`;
    line.dataset.level = level;
  }
  // Errors also stay a while as toasts, so one is not lost under the next notice.
  if (!stack || level !== "error") return;
  const toast = h("div", { class: `toast ${level}`, testid: "toast", data: { level }, role: "status" }, text);
  stack.appendChild(toast);
  while (stack.children.length > 3) stack.firstElementChild?.remove();
  setTimeout(() => toast.remove(), 15_000);
}

/** Reports a failure: `what` went wrong because of `e`. */
export function fail(what: string, e: unknown): void {
  notify(`${what}: ${errorText(e)}`, "error");
}

/** Runs `f`, reporting a failure as `what`. */
export async function attempt<T>(what: string, f: () => Promise<T>): Promise<T | undefined> {
  try {
    return await f();
  } catch (e) {
    fail(what, e);
    return undefined;
  }
}
