// Small pieces every page uses: status chips, times, progress, a JSON viewer.

import {h} from "./dom.js";
import {when} from "./format.js";

export const STATUSES = ["ready", "waiting", "running", "finished", "failed"];
export const ENDED = new Set(["finished", "failed"]);

/** A task's status as a labelled chip (colour and text: never colour alone). */
export function chip(status, extra = "") {
  return h("span", {class: `chip chip-${STATUSES.includes(status) ? status : "other"}`},
    status + (extra ? ` ${extra}` : ""));
}

/** A time in the user's zone, its ISO form kept for machines and on hover. */
export function time(iso) {
  return iso ? h("time", {datetime: iso, title: iso}, when(iso)) : h("span", {}, "—");
}

/** A labelled progress bar for a share 0..1 (null: none reported). */
export function progress(share, id) {
  if (share === null || share === undefined) return h("span", {id}, "not reported");
  const pct = Math.round(share * 100);
  return h("span", {class: "progress"},
    h("progress", {id, max: 100, value: pct, "aria-label": "Progress"}, `${pct} %`),
    h("span", {}, `${pct} %`));
}

/** A JSON value as a tree: objects and arrays fold (deep or long ones start folded). */
export function jsonView(value, depth = 0) {
  if (value === null) return h("span", {class: "j-null"}, "null");
  if (typeof value === "object") {
    const list = Array.isArray(value);
    const entries = list ? value.map((v, i) => [i, v]) : Object.entries(value);
    const [open, close] = list ? ["[", "]"] : ["{", "}"];
    if (entries.length === 0) return h("span", {class: "j-punct"}, open + close);
    const items = entries.map(([key, item]) => h("li", {},
      list ? null : [h("span", {class: "j-key"}, JSON.stringify(key)), h("span", {class: "j-punct"}, ": ")],
      jsonView(item, depth + 1)));
    const n = entries.length;
    const label = `${n} ${list ? "item" : "key"}${n === 1 ? "" : "s"}`;
    return h("details", {class: "j-node", open: depth < 2 && entries.length <= 50},
      h("summary", {}, h("span", {class: "j-punct"}, open), h("span", {class: "j-count"}, ` ${label} `),
        h("span", {class: "j-punct"}, close)),
      h("ul", {}, items));
  }
  const kind = typeof value === "string" ? "j-str" : typeof value === "number" ? "j-num" : "j-bool";
  return h("span", {class: kind}, JSON.stringify(value));
}
