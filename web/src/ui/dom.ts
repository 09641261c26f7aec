// A small element builder: h("button", { testid: "send", onclick }, "Send").

type Child = Node | string | number | null | undefined | false;
type Handler = (ev: Event) => void;

export interface Attrs {
  /** data-testid */
  testid?: string;
  class?: string;
  /** Other data-* attributes, without the prefix. */
  data?: Record<string, string>;
  [key: string]: unknown;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "testid") el.setAttribute("data-testid", String(v));
      else if (k === "class") el.className = String(v);
      else if (k === "data") {
        for (const [dk, dv] of Object.entries(v as Record<string, string>)) el.dataset[dk] = dv;
      } else if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v as Handler);
      } else if (k === "value" && "value" in el) {
        (el as HTMLInputElement).value = String(v);
      } else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: (Child | Child[])[]): void {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c === null || c === undefined || c === false) continue;
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A form of inputs and a submit button; `submit` gets the trimmed values. */
export function form(
  testid: string,
  fields: { name: string; placeholder: string; testid: string; type?: string; required?: boolean }[],
  button: { label: string; testid: string },
  submit: (values: Record<string, string>, form: HTMLFormElement) => void | Promise<void>,
): HTMLFormElement {
  const inputs = fields.map((f) =>
    h("input", {
      name: f.name,
      placeholder: f.placeholder,
      testid: f.testid,
      type: f.type ?? "text",
      required: f.required ?? true,
      autocomplete: "off",
    }),
  );
  const f = h("form", { class: "inline-form", testid }, inputs, h("button", { type: "submit", testid: button.testid }, button.label));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const values: Record<string, string> = {};
    for (const i of inputs) values[i.name] = i.type === "password" ? i.value : i.value.trim();
    void submit(values, f);
  });
  return f;
}

export function timeOf(ms: bigint): string {
  if (ms === 0n) return "";
  const d = new Date(Number(ms));
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : `${d.toLocaleDateString()} ${time}`;
}
