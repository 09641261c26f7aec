// The session: the connection of this tab (one device), login, register,
// resume, logout, and reconnecting with the resume token when the
// connection breaks. Features hang off it: each registers its pushes on
// the dispatcher once, and is told when a session starts and ends.

import { DeviceKind, ErrorCode, KickReason } from "./gen/client_pb";
import type { LoginOk } from "./gen/client_pb";
import { Connection, isFinal } from "./protocol/connection";
import type { CloseInfo } from "./protocol/connection";
import { PushDispatcher } from "./protocol/dispatcher";
import { ClosedError, ServerError, codeName, describeCode } from "./protocol/errors";
import type { BodyCase, BodyInit, BodyOf } from "./protocol/frames";
import { notify } from "./ui/status";

export interface Feature {
  /** A session started (`resumed`: again after a reconnect): load what it shows. */
  start(resumed: boolean): Promise<void>;
  /** Logged out: forget everything of the last user. */
  reset(): void;
}

export type ConnState = "offline" | "connecting" | "online" | "reconnecting";

const DEVICE_KEY = "confab.device";
const TOKEN_KEY = "confab.session";
const RETRY_MAX_MS = 30_000;

/** This tab's device id: one per tab, kept across reloads of the tab. */
function deviceId(): string {
  let id = sessionStorage.getItem(DEVICE_KEY);
  if (!id) {
    const rnd = crypto.getRandomValues(new Uint32Array(2));
    id = `web-${rnd[0].toString(36)}${rnd[1].toString(36)}`;
    sessionStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

export class Session {
  readonly pushes = new PushDispatcher();
  readonly device = deviceId();
  me?: LoginOk;
  state: ConnState = "offline";

  onState: (s: ConnState) => void = () => {};
  onLogin: () => void = () => {};
  onLogout: () => void = () => {};

  private conn?: Connection;
  private features: Feature[] = [];
  private retryMs = 1000;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private kicked = false;

  constructor(readonly url: string) {
    this.pushes.on("kicked", (k) => {
      this.kicked = true;
      const why =
        k.reason === KickReason.SAME_DEVICE
          ? "this device logged in again elsewhere"
          : k.reason === KickReason.POLICY
            ? "the account has too many devices online"
            : "the server ended it";
      notify(`Signed out: ${why}${k.byDeviceId ? ` (by ${k.byDeviceId})` : ""}. ${k.message}`.trim(), "error");
    });
  }

  get userId(): bigint {
    return this.me?.userId ?? 0n;
  }

  add(feature: Feature): void {
    this.features.push(feature);
  }

  /** A request over the current connection; its answer must be `expect`. */
  request<C extends BodyCase>(body: BodyInit, expect: C): Promise<BodyOf<C>> {
    if (!this.conn) return Promise.reject(new ClosedError("Not connected to the server"));
    return this.conn.request(body, expect);
  }

  async register(name: string, password: string): Promise<void> {
    const conn = await this.connect();
    try {
      await conn.request({ case: "register", value: { name, password } }, "registerOk");
    } catch (e) {
      this.drop();
      throw e;
    }
    await this.finishLogin({ case: "login", value: { name, password, deviceId: this.device, deviceKind: DeviceKind.WEB } });
  }

  async login(name: string, password: string): Promise<void> {
    await this.connect();
    await this.finishLogin({ case: "login", value: { name, password, deviceId: this.device, deviceKind: DeviceKind.WEB } });
  }

  /** Resumes the session this tab had before a reload; false when there is none. */
  async resumeSaved(): Promise<boolean> {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return false;
    try {
      await this.connect();
      await this.finishLogin({ case: "resume", value: { token, deviceId: this.device, deviceKind: DeviceKind.WEB } });
      return true;
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      this.drop();
      if (e instanceof ServerError && e.code === ErrorCode.BAD_TOKEN) return false;
      throw e;
    }
  }

  async logout(): Promise<void> {
    try {
      if (this.conn?.isOpen) await this.conn.request({ case: "logout", value: {} }, "logoutOk");
    } finally {
      this.endSession();
    }
  }

  private async connect(): Promise<Connection> {
    this.drop();
    this.setState("connecting");
    try {
      const conn = await Connection.open(this.url, this.pushes);
      conn.onClose = (info) => this.closed(conn, info);
      conn.onServerError = (err) =>
        notify(`${describeCode(err.code)} (${codeName(err.code)}${err.message ? `: ${err.message}` : ""})`, "error");
      this.conn = conn;
      return conn;
    } catch (e) {
      this.setState("offline");
      throw e;
    }
  }

  private async finishLogin(body: BodyInit): Promise<void> {
    const resumed = this.me !== undefined;
    let ok: LoginOk;
    try {
      ok = await this.request(body, "loginOk");
    } catch (e) {
      if (!resumed) this.drop();
      throw e;
    }
    this.me = ok;
    this.kicked = false;
    this.retryMs = 1000;
    sessionStorage.setItem(TOKEN_KEY, ok.token);
    this.setState("online");
    if (!resumed) this.onLogin();
    for (const f of this.features) {
      try {
        await f.start(resumed);
      } catch (e) {
        notify(`Loading after login failed: ${e instanceof Error ? e.message : String(e)}`, "error");
      }
    }
  }

  private closed(conn: Connection, info: CloseInfo): void {
    if (conn !== this.conn) return;
    this.conn = undefined;
    if (info.byUs) return;
    if (!this.me) {
      this.setState("offline");
      return;
    }
    if (this.kicked || isFinal(info.error?.code)) {
      this.endSession();
      return;
    }
    if (!info.error) notify("Connection to the server lost; reconnecting…", "error");
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.setState("reconnecting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.reconnect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  private async reconnect(): Promise<void> {
    const me = this.me;
    if (!me) return;
    try {
      await this.connect();
      await this.finishLogin({ case: "resume", value: { token: me.token, deviceId: this.device, deviceKind: DeviceKind.WEB } });
      notify("Reconnected", "ok");
    } catch (e) {
      if (e instanceof ServerError && e.code === ErrorCode.BAD_TOKEN) {
        notify("Your session has expired; log in again", "error");
        this.endSession();
        return;
      }
      this.drop();
      this.scheduleReconnect();
    }
  }

  /** Closes the connection, keeping the session (for a reconnect). */
  private drop(): void {
    const c = this.conn;
    this.conn = undefined;
    c?.close();
  }

  private endSession(): void {
    clearTimeout(this.retryTimer);
    this.drop();
    sessionStorage.removeItem(TOKEN_KEY);
    const was = this.me !== undefined;
    this.me = undefined;
    this.setState("offline");
    for (const f of this.features) f.reset();
    if (was) this.onLogout();
  }

  private setState(s: ConnState): void {
    this.state = s;
    this.onState(s);
  }
}
