// The gateway's error frames as JavaScript errors, and their codes in words.

import { ErrorCode } from "../gen/client_pb";
import type { Error as ErrorFrame } from "../gen/client_pb";

/** What the user reads for each code (the server's own text follows it). */
const WORDS: Record<ErrorCode, string> = {
  [ErrorCode.UNSPECIFIED]: "The server reported an error",
  [ErrorCode.BAD_FRAME]: "The server could not read what this page sent",
  [ErrorCode.FRAME_TOO_LARGE]: "That was too large for the server",
  [ErrorCode.UNSUPPORTED_VERSION]: "The server does not speak this page's protocol version",
  [ErrorCode.HANDSHAKE_REQUIRED]: "The connection did not start with a handshake",
  [ErrorCode.UNKNOWN_REQUEST]: "The server does not know this request",
  [ErrorCode.NOT_LOGGED_IN]: "You are not logged in",
  [ErrorCode.ALREADY_LOGGED_IN]: "You are already logged in",
  [ErrorCode.BAD_CREDENTIALS]: "Wrong user name or password",
  [ErrorCode.NAME_TAKEN]: "That name is taken",
  [ErrorCode.USER_NOT_FOUND]: "No such user",
  [ErrorCode.INVALID_ARGUMENT]: "The request was not valid",
  [ErrorCode.FORBIDDEN]: "You are not allowed to do that",
  [ErrorCode.UNAVAILABLE]: "The service is unavailable right now; try again later",
  [ErrorCode.INTERNAL]: "The server failed",
  [ErrorCode.IDLE_TIMEOUT]: "The connection was idle for too long",
  [ErrorCode.SLOW_CONSUMER]: "This page fell behind reading its updates",
  [ErrorCode.GOING_AWAY]: "The server is going away",
  [ErrorCode.BAD_TOKEN]: "Your session has expired; log in again",
  [ErrorCode.NOT_FOUND]: "Not found",
  [ErrorCode.ALREADY_EXISTS]: "That already exists",
  [ErrorCode.FAILED_PRECONDITION]: "That is not possible now",
  [ErrorCode.RATE_LIMITED]: "Too many requests; wait a moment",
  [ErrorCode.BUSY]: "The server is busy; try again shortly",
  [ErrorCode.TOO_MANY_CONNECTIONS]: "Too many connections from this address",
  [ErrorCode.LOGIN_TIMEOUT]: "Logging in took too long",
  [ErrorCode.LIMIT_REACHED]: "A limit is reached",
  [ErrorCode.RECALL_WINDOW_PASSED]: "It is too late to recall that message",
};

export function codeName(code: ErrorCode): string {
  return ErrorCode[code] ?? `code ${code}`;
}

export function describeCode(code: ErrorCode): string {
  return WORDS[code] ?? `The server reported error ${code}`;
}

/** An error frame answering a request, or closing the connection. */
export class ServerError extends Error {
  readonly code: ErrorCode;
  readonly serverMessage: string;
  readonly retryAfterMs: number;

  constructor(frame: ErrorFrame) {
    const words = describeCode(frame.code);
    const detail = frame.message ? `: ${frame.message}` : "";
    super(`${words} (${codeName(frame.code)}${detail})`);
    this.name = "ServerError";
    this.code = frame.code;
    this.serverMessage = frame.message;
    this.retryAfterMs = frame.retryAfterMs;
  }
}

/** The connection ended before the answer came. */
export class ClosedError extends Error {
  constructor(message = "The connection to the server is closed") {
    super(message);
    this.name = "ClosedError";
  }
}

/** No answer in time. */
export class TimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`No answer from the server to ${what} within ${Math.round(ms / 1000)} s`);
    this.name = "TimeoutError";
  }
}

/** True when the request may or may not have been done (answer lost). */
export function answerLost(e: unknown): boolean {
  return e instanceof ClosedError || e instanceof TimeoutError;
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
