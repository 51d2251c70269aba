// Each service at a glance: its tasks by status, the last hour, run times, workers, breaker.

import {api} from "./api.js";
import {fill, h} from "./dom.js";
import {duration, percent} from "./format.js";
import {liveView} from "./live.js";
import {tasksHash} from "./tasks.js";
import {chip, STATUSES, time} from "./widgets.js";

const REFRESH_MS = 5000;

export function servicesPage(main, route, ctx) {
  const body = h("div", {id: "services", class: "grid"}, h("p", {class: "help"}, "Loading…"));
  const view = liveView({load: api.serviceStats, render: (answer) => fill(body, answer.data.map(card)),
    problem: body, failed: ctx.failed, ms: REFRESH_MS});
  fill(main, h("h1", {}, "Services"),
    h("div", {class: "toolbar"}, view.controls),
    h("p", {class: "help"}, "Throughput and failure rate count the tasks that ended in the last hour."),
    body);
  return {stop: view.stop};
}

function card(s) {
  const id = `svc-${s.service}`;
  const hour = s.last_hour;
  return h("section", {class: "card service", id, "aria-labelledby": `${id}-name`},
    h("h2", {id: `${id}-name`}, s.service, " ", breaker(s.breaker)),
    s.publish_failing_since && h("p", {class: "notice error", role: "alert"},
      "Kafka refuses its messages since ", time(s.publish_failing_since)),
    h("h3", {class: "counts-title", id: `${id}-counts`}, "Tasks by status"),
    h("ul", {class: "counts", "aria-labelledby": `${id}-counts`}, STATUSES.map((status) =>
      h("li", {"data-status": status}, chip(status),
        h("a", {href: tasksHash({service: s.service, status}),
          "aria-label": `${s.counts[status]} ${status} tasks of ${s.service}`}, String(s.counts[status]))))),
    h("dl", {class: "facts"},
      fact("Running now", s.counts.running, "running"),
      fact("Finished, last hour", hour.finished, "finished"),
      fact("Failed, last hour", hour.failed, "failed"),
      fact("Throughput", `${hour.per_minute.toFixed(2)} a minute`, "per-minute"),
      fact("Failure rate", percent(hour.failure_rate), "failure-rate"),
      fact("Run time", s.run_time ? `${duration(s.run_time.median_s)} median, ${duration(s.run_time.p95_s)} p95` : "—"),
      fact("Workers", s.workers === null ? "not known" : s.workers, "workers"),
      fact("Dispatcher last looked", time(s.dispatcher_seen_at))),
    h("p", {}, h("a", {href: tasksHash({service: s.service})}, `All tasks of ${s.service} →`)));
}

function breaker(b) {
  return h("span", {class: "breaker"},
    h("span", {class: `chip chip-${b.state}`}, `breaker ${b.state.replace("_", " ")}`),
    b.state === "open" && h("span", {class: "help"}, ` after ${b.failures} failures, until `, time(b.until)),
    b.state === "half_open" && h("span", {class: "help"}, " one task on trial"));
}

function fact(name, value, key) {
  return [h("dt", {}, name), h("dd", {"data-fact": key}, value)];
}
