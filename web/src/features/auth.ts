// The login screen: log in or register (then log in) with a user name and
// a password. Each browser tab is a device of its own.

import type { Session } from "../session";
import { h } from "../ui/dom";
import { fail, notify } from "../ui/status";

export function loginScreen(session: Session): HTMLElement {
  const name = h("input", { testid: "login-name", name: "name", placeholder: "User name", autocomplete: "username", required: true });
  const password = h("input", {
    testid: "login-password",
    name: "password",
    type: "password",
    placeholder: "Password",
    autocomplete: "current-password",
    required: true,
  });
  const loginBtn = h("button", { type: "submit", testid: "login-btn" }, "Log in");
  const registerBtn = h("button", { type: "button", class: "secondary", testid: "register-btn" }, "Register");
  const f = h(
    "form",
    { class: "login-form", testid: "login-form" },
    h("h1", null, "Confab"),
    h("p", { class: "muted" }, "Log in, or register a new account."),
    h("label", null, "User name", name),
    h("label", null, "Password", password),
    h("div", { class: "buttons" }, loginBtn, registerBtn),
    h("p", { class: "muted small", testid: "gateway-url" }, `Server: ${session.url}`),
    h("p", { class: "muted small", testid: "device-id" }, `This tab is device ${session.device}`),
  );

  let busy = false;
  const run = async (register: boolean) => {
    const n = name.value.trim();
    const p = password.value;
    if (!n || !p) {
      notify("Enter a user name and a password", "error");
      return;
    }
    if (busy) return;
    busy = true;
    loginBtn.disabled = registerBtn.disabled = true;
    try {
      if (register) {
        await session.register(n, p);
        notify(`Welcome, ${n}: your account is registered`, "ok");
      } else {
        await session.login(n, p);
        notify(`Logged in as ${n}`, "ok");
      }
      password.value = "";
    } catch (e) {
      fail(register ? "Registering failed" : "Logging in failed", e);
    } finally {
      busy = false;
      loginBtn.disabled = registerBtn.disabled = false;
    }
  };
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void run(false);
  });
  registerBtn.addEventListener("click", () => void run(true));
  return h("div", { class: "login-screen", testid: "login-screen" }, f);
}
