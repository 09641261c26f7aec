// The central dispatcher of pushes (frames with request id 0). Each feature
// registers for the body cases it handles; a new push kind in the protocol
// (read receipts, typing, recall...) is one more `on(...)` in its feature.

import type { Body, BodyCase, BodyOf } from "./frames";

export type PushHandler<C extends BodyCase> = (value: BodyOf<C>) => void | Promise<void>;

type AnyHandler = (value: unknown) => void | Promise<void>;

export class PushDispatcher {
  private handlers = new Map<BodyCase, AnyHandler[]>();
  /** Told of a handler that failed (shown to the user). */
  onHandlerError: (kind: BodyCase, error: unknown) => void = (kind, error) =>
    console.error(`push ${kind} failed`, error);
  /** Told of a push no feature handles. */
  onUnhandled: (kind: BodyCase) => void = (kind) => console.debug(`push ${kind} not handled`);

  on<C extends BodyCase>(kind: C, handler: PushHandler<C>): () => void {
    const list = this.handlers.get(kind) ?? [];
    list.push(handler as AnyHandler);
    this.handlers.set(kind, list);
    return () => {
      const l = this.handlers.get(kind);
      if (l) this.handlers.set(kind, l.filter((h) => h !== handler));
    };
  }

  dispatch(body: Body): void {
    const kind = body.case;
    if (kind === undefined) return;
    const list = this.handlers.get(kind);
    if (!list || list.length === 0) {
      this.onUnhandled(kind);
      return;
    }
    for (const h of list) {
      try {
        const r = h(body.value);
        if (r instanceof Promise) r.catch((e) => this.onHandlerError(kind, e));
      } catch (e) {
        this.onHandlerError(kind, e);
      }
    }
  }
}
