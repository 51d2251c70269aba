// Refresh a page on a timer: one refresh at a time, the next `ms` after the last ends.

import {h} from "./dom.js";

/** Run `refresh` now and every `ms` after; `pause`/`resume` follow a "Live" switch,
 * `now` refreshes at once, `stop` ends it when the page goes. */
export function live(refresh, ms) {
  let timer = null;
  let busy = false;
  let paused = false;
  let stopped = false;

  async function run() {
    clearTimeout(timer);
    timer = null;
    if (stopped || busy) return;
    busy = true;
    try {
      await refresh();
    } finally {
      busy = false;
      if (!stopped && !paused) timer = setTimeout(run, ms);
    }
  }

  run();
  return {
    now: run,
    pause() { paused = true; clearTimeout(timer); },
    resume() { paused = false; run(); },
    stop() { stopped = true; clearTimeout(timer); },
  };
}

/** A "Live" checkbox driving a `live` loop. */
export function liveSwitch(loop, id = "live") {
  const box = h("input", {type: "checkbox", id, checked: true,
    onchange: () => (box.checked ? loop.resume() : loop.pause())});
  return h("span", {class: "switch"}, box, h("label", {for: id}, "Live refresh"));
}
