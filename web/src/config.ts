// Where the gateway is, and the few knobs the page takes from its URL.

/**
 * The gateway's WebSocket URL: `?ws=` when given, else `/ws` on the host
 * that served the page (wss when the page came over https).
 */
export function gatewayUrl(loc: Location = window.location): string {
  const given = new URLSearchParams(loc.search).get("ws");
  if (given) return given;
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws`;
}

/** Messages per history page (`?page=` overrides, for trying scroll-back). */
export function historyPageSize(loc: Location = window.location): number {
  const n = Number(new URLSearchParams(loc.search).get("page"));
  return Number.isInteger(n) && n > 0 && n <= 200 ? n : 30;
}
