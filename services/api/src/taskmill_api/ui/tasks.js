// The tasks: newest first, filtered by service and status, a page at a time, live.

import {api} from "./api.js";
import {fill, h} from "./dom.js";
import {brief} from "./format.js";
import {liveView} from "./live.js";
import {chip, STATUSES, time} from "./widgets.js";

const PAGE_SIZE = 20;
const REFRESH_MS = 3000;

/** The hash of the tasks page with these filters. */
export function tasksHash({service = "", status = "", page = 1} = {}) {
  const query = new URLSearchParams();
  if (service) query.set("service", service);
  if (status) query.set("status", status);
  if (page > 1) query.set("page", String(page));
  const text = query.toString();
  return `#/tasks${text ? `?${text}` : ""}`;
}

export function tasksPage(main, route, ctx) {
  const service = route.query.get("service") ?? "";
  const status = route.query.get("status") ?? "";
  const page = Math.max(1, Number.parseInt(route.query.get("page") ?? "1", 10) || 1);
  const go = (change) => ctx.go(tasksHash({service, status, page: 1, ...change}));

  const serviceSelect = h("select", {id: "f-service", onchange: () => go({service: serviceSelect.value})},
    h("option", {value: ""}, "All services"),
    service && h("option", {value: service, selected: true}, service));
  const statusSelect = h("select", {id: "f-status", onchange: () => go({status: statusSelect.value})},
    h("option", {value: ""}, "All statuses"),
    STATUSES.map((s) => h("option", {value: s, selected: s === status}, s)));
  const body = h("div", {id: "tasks-body"}, h("p", {class: "help"}, "Loading…"));
  const view = liveView({load: () => api.list({page, size: PAGE_SIZE, service, status}),
    render: (answer) => fill(body, table(answer), pager(answer)),
    problem: body, failed: ctx.failed, ms: REFRESH_MS});

  function pager(answer) {
    const pages = Math.max(1, Math.ceil(answer.total / PAGE_SIZE));
    const link = (to, text, rel) => (to >= 1 && to <= pages && to !== page
      ? h("a", {href: tasksHash({service, status, page: to}), rel}, text)
      : h("span", {class: "disabled", "aria-disabled": "true"}, text));
    return h("nav", {class: "pager", "aria-label": "Pages of tasks"},
      link(page - 1, "← Newer", "prev"),
      h("span", {id: "page-of"}, `Page ${page} of ${pages} · ${answer.total} tasks`),
      link(page + 1, "Older →", "next"));
  }

  fill(main,
    h("h1", {}, "Tasks"),
    h("form", {class: "filters", role: "search", "aria-label": "Filter tasks",
      onsubmit: (event) => event.preventDefault()},
      h("span", {class: "field"}, h("label", {for: "f-service"}, "Service"), serviceSelect),
      h("span", {class: "field"}, h("label", {for: "f-status"}, "Status"), statusSelect),
      view.controls),
    body);

  api.services().then((answer) => {
    const names = answer.data.filter((name) => name !== service);
    serviceSelect.append(...names.map((name) => h("option", {value: name}, name)));
  }).catch(() => {});  // the list itself says what is wrong

  return {stop: view.stop};
}

function table(answer) {
  if (answer.count === 0) return h("p", {class: "empty", id: "no-tasks"}, "No tasks match.");
  return h("div", {class: "scroll"}, h("table", {class: "tasks", id: "tasks"},
    h("caption", {class: "sr-only"}, "Tasks, newest first"),
    h("thead", {}, h("tr", {},
      ["Task", "Service", "Status", "Created", "Condition"].map((name) =>
        h("th", {scope: "col", class: `col-${name.toLowerCase()}`}, name)))),
    h("tbody", {}, answer.data.map((task) => h("tr", {"data-task": task.task_id},
      h("td", {class: "col-task"}, h("a", {href: `#/task/${encodeURIComponent(task.task_id)}`,
        class: "mono"}, task.task_id)),
      h("td", {}, task.service),
      h("td", {}, chip(task.status)),
      h("td", {class: "col-created"}, time(task.create_time)),
      h("td", {class: "col-condition mono"}, brief(task.condition)))))));
}
