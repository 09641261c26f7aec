// One WebSocket connection to a gateway: one binary message per `Frame`,
// the Hello handshake, requests matched to their answers by request id,
// heartbeats, and every push (request id 0) handed to the dispatcher.

import { ErrorCode, ProtocolVersion } from "../gen/client_pb";
import type { Error as ErrorFrame, HelloOk } from "../gen/client_pb";
import type { PushDispatcher } from "./dispatcher";
import { ClosedError, ServerError, TimeoutError } from "./errors";
import { decodeFrame, encodeFrame } from "./frames";
import type { Body, BodyCase, BodyInit, BodyOf } from "./frames";

export const CLIENT_NAME = "confab-web/0.1";
/** How long a request waits for its answer. */
export const REQUEST_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 10_000;

interface Waiter {
  what: string;
  resolve: (body: Body) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export interface CloseInfo {
  /** The error frame the gateway closed with, if it sent one. */
  error?: ErrorFrame;
  /** The WebSocket close code and reason. */
  code: number;
  reason: string;
  /** True when this side closed it (`close()`). */
  byUs: boolean;
}

export class Connection {
  hello?: HelloOk;
  /** Called once, when the connection is gone. */
  onClose: (info: CloseInfo) => void = () => {};
  /** Called on an error frame without request id (the gateway closes next). */
  onServerError: (error: ErrorFrame) => void = () => {};

  private ws: WebSocket;
  private nextId = 1n;
  private pending = new Map<bigint, Waiter>();
  private heartbeat?: ReturnType<typeof setInterval>;
  private closingError?: ErrorFrame;
  private closedByUs = false;
  private closed = false;

  private constructor(
    readonly url: string,
    private readonly pushes: PushDispatcher,
  ) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
  }

  /** Opens the WebSocket and shakes hands (Hello / HelloOk). */
  static async open(url: string, pushes: PushDispatcher): Promise<Connection> {
    const c = new Connection(url, pushes);
    await c.opened();
    const ok = await c.request(
      { case: "hello", value: { version: ProtocolVersion.PROTOCOL_VERSION_1, client: CLIENT_NAME } },
      "helloOk",
    );
    c.hello = ok;
    c.startHeartbeat(ok.heartbeatMs);
    return c;
  }

  private opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new ClosedError(`Could not reach the server at ${this.url} (timed out)`));
        this.ws.close();
      }, CONNECT_TIMEOUT_MS);
      this.ws.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      this.ws.onerror = () => {
        clearTimeout(timer);
        reject(new ClosedError(`Could not reach the server at ${this.url}`));
      };
      this.ws.onmessage = (ev) => this.receive(ev.data);
      this.ws.onclose = (ev) => {
        clearTimeout(timer);
        reject(new ClosedError(`Could not reach the server at ${this.url}`));
        this.closedNow(ev.code, ev.reason);
      };
    });
  }

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a request and waits for its answer, which must be of case `expect`. */
  async request<C extends BodyCase>(body: BodyInit, expect: C): Promise<BodyOf<C>> {
    const answer = await this.call(body);
    if (answer.case !== expect) {
      throw new Error(`Unexpected answer from the server: ${answer.case} instead of ${expect}`);
    }
    return answer.value as BodyOf<C>;
  }

  /** Sends a request; its answer (an error frame rejects). */
  call(body: BodyInit): Promise<Body> {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ClosedError());
    }
    const id = this.nextId++;
    const what = body.case ?? "request";
    return new Promise<Body>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError(what, REQUEST_TIMEOUT_MS));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { what, resolve, reject, timer });
      try {
        this.ws.send(encodeFrame(id, body));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new ClosedError(String(e)));
      }
    });
  }

  /** Closes the connection (no reconnect follows from this side). */
  close(): void {
    this.closedByUs = true;
    this.ws.close(1000, "bye");
    this.closedNow(1000, "closed by the client");
  }

  private startHeartbeat(everyMs: number): void {
    const every = Math.max(everyMs || 15_000, 1000);
    this.heartbeat = setInterval(() => {
      if (!this.isOpen) return;
      // A ping is a request like any other; its Pong needs no waiter.
      const id = this.nextId++;
      try {
        this.ws.send(encodeFrame(id, { case: "ping", value: {} }));
      } catch {
        /* the close handler reports it */
      }
    }, every);
  }

  private receive(data: unknown): void {
    if (!(data instanceof ArrayBuffer)) {
      console.warn("ignored a text message from the server");
      return;
    }
    let frame;
    try {
      frame = decodeFrame(new Uint8Array(data));
    } catch (e) {
      console.error("unreadable frame from the server", e);
      return;
    }
    const body = frame.body;
    if (frame.requestId !== 0n) {
      const w = this.pending.get(frame.requestId);
      if (!w) return; // a Pong, or an answer after its timeout
      this.pending.delete(frame.requestId);
      clearTimeout(w.timer);
      if (body.case === "error") w.reject(new ServerError(body.value));
      else w.resolve(body);
      return;
    }
    if (body.case === "error") {
      // An error push: the gateway is closing the connection.
      this.closingError = body.value;
      this.onServerError(body.value);
      return;
    }
    if (body.case !== undefined) this.pushes.dispatch(body);
  }

  private closedNow(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    const err = this.closingError ? new ServerError(this.closingError) : new ClosedError();
    for (const w of this.pending.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.pending.clear();
    this.onClose({ error: this.closingError, code, reason, byUs: this.closedByUs });
  }
}

/** Codes after which reconnecting with the same session makes no sense. */
export function isFinal(code: ErrorCode | undefined): boolean {
  return (
    code === ErrorCode.BAD_TOKEN ||
    code === ErrorCode.UNSUPPORTED_VERSION ||
    code === ErrorCode.BAD_FRAME ||
    code === ErrorCode.FRAME_TOO_LARGE
  );
}
