// Refresh a page on a timer: one refresh at a time, the next `ms` after the last ends.

import {fill, h} from "./dom.js";
import {clock} from "./format.js";

/** Run `refresh` now and every `ms` after; `pause`/`resume` follow a "Live" switch,
 * `now` refreshes at once, `stop` ends it when the page goes. */
function live(refresh, ms) {
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
function liveSwitch(loop, id = "live") {
  const box = h("input", {type: "checkbox", id, checked: true,
    onchange: () => (box.checked ? loop.resume() : loop.pause())});
  return h("span", {class: "switch"}, box, h("label", {for: id}, "Live refresh"));
}

/** Part of a page that shows what `load()` answers, refreshed every `ms` while its Live
 * switch is on. `render(answer)` runs only when the answer changed, so an unchanged page
 * (and the keyboard's focus) stays put; a failed load shows `failed(error)` in `problem`,
 * which the next answer clears. `controls`: the switch and the time of the last answer,
 * for the page's toolbar; `now()` refreshes at once, `stop()` when the page goes. */
export function liveView({load, render, problem, failed, ms}) {
  const updated = h("p", {class: "updated", id: "updated", "aria-live": "off"});
  let shown = null;  // the answer on the page as JSON; null before one and after a failure
  const loop = live(async () => {
    try {
      const answer = await load();
      fill(updated, `Updated ${clock()}`);
      const text = JSON.stringify(answer);
      if (text === shown) return;
      if (shown === null) fill(problem);
      shown = text;
      render(answer);
    } catch (error) {
      shown = null;
      fill(problem, failed(error));
    }
  }, ms);
  return {controls: [liveSwitch(loop), updated], now: loop.now, stop: loop.stop};
}
