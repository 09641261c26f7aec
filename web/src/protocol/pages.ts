// Paged list answers: ask the first page, then the page after each answer
// whose PageInfo says `more`.

import type { PageInfo } from "../gen/client_pb";

export interface PageReq {
  cursor: string;
  limit: number;
}

/** Every page of a list; `ask` requests one page, `items` takes its items. */
export async function allPages<R extends { page?: PageInfo }, T>(
  ask: (page: PageReq) => Promise<R>,
  items: (reply: R) => T[],
  maxPages = 100,
): Promise<T[]> {
  const out: T[] = [];
  let page: PageReq = { cursor: "", limit: 0 };
  for (let i = 0; i < maxPages; i++) {
    const reply = await ask(page);
    out.push(...items(reply));
    if (!reply.page?.more) break;
    page = { cursor: reply.page.nextCursor, limit: 0 };
  }
  return out;
}
