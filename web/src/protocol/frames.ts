// Types over the generated `Frame`: the cases of its body and the value of
// each, so requests, answers and pushes are typed by their case name.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { FrameSchema } from "../gen/client_pb";
import type { Frame } from "../gen/client_pb";

export type Body = Frame["body"];
export type BodyCase = NonNullable<Body["case"]>;
/** The message carried by body case `C`. */
export type BodyOf<C extends BodyCase> = Extract<Body, { case: C }>["value"];
/** What a request's body may be built from (plain objects are fine). */
export type BodyInit = NonNullable<MessageInitShape<typeof FrameSchema>["body"]>;

export function encodeFrame(requestId: bigint, body: BodyInit): Uint8Array {
  return toBinary(FrameSchema, create(FrameSchema, { requestId, body }));
}

export function decodeFrame(bytes: Uint8Array): Frame {
  return fromBinary(FrameSchema, bytes);
}

/** The conversation id of two users: "d:{lo}:{hi}". */
export function directConversation(a: bigint, b: bigint): string {
  return a < b ? `d:${a}:${b}` : `d:${b}:${a}`;
}

/** The conversation id of a group: "g:{id}". */
export function groupConversation(groupId: bigint): string {
  return `g:${groupId}`;
}

export type ConversationRef =
  | { kind: "direct"; peer: bigint }
  | { kind: "group"; groupId: bigint }
  | { kind: "unknown" };

/** What a conversation id names, seen from user `me`. */
export function parseConversation(id: string, me: bigint): ConversationRef {
  const d = /^d:(\d+):(\d+)$/.exec(id);
  if (d) {
    const lo = BigInt(d[1]);
    const hi = BigInt(d[2]);
    return { kind: "direct", peer: lo === me ? hi : lo };
  }
  const g = /^g:(\d+)$/.exec(id);
  if (g) return { kind: "group", groupId: BigInt(g[1]) };
  return { kind: "unknown" };
}
