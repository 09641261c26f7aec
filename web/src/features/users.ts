// User names by id: learnt from every list that carries them (friends,
// requests, members), looked up by id otherwise (LookupUser).

import type { UserInfo } from "../gen/client_pb";
import type { Feature, Session } from "../session";

export class Users implements Feature {
  private names = new Map<bigint, string>();
  private asking = new Map<bigint, Promise<string>>();
  /** Called when a name looked up arrives (views re-render). */
  onLearnt: () => void = () => {};

  constructor(private readonly session: Session) {}

  async start(): Promise<void> {
    const me = this.session.me;
    if (me) this.names.set(me.userId, me.name);
  }

  reset(): void {
    this.names.clear();
    this.asking.clear();
  }

  learn(u: UserInfo | undefined): void {
    if (u && u.userId !== 0n && u.name) this.names.set(u.userId, u.name);
  }

  /** The name when known; starts a lookup otherwise and answers "user N". */
  nameOf(id: bigint): string {
    const n = this.names.get(id);
    if (n !== undefined) return n;
    void this.lookup(id).catch(() => {});
    return `user ${id}`;
  }

  lookup(id: bigint): Promise<string> {
    const known = this.names.get(id);
    if (known !== undefined) return Promise.resolve(known);
    let p = this.asking.get(id);
    if (!p) {
      p = this.session
        .request({ case: "lookupUser", value: { userId: id } }, "user")
        .then((u) => {
          this.learn(u);
          this.onLearnt();
          return u.name;
        })
        .finally(() => this.asking.delete(id));
      this.asking.set(id, p);
    }
    return p;
  }
}
