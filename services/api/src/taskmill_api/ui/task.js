// One task: where it is, why it waits, what it was asked and answered, its history;
// start and cancel it.

import {api} from "./api.js";
import {confirmDialog, fill, h, notice} from "./dom.js";
import {brief, duration} from "./format.js";
import {liveView} from "./live.js";
import {tasksHash} from "./tasks.js";
import {chip, ENDED, jsonView, progress, time} from "./widgets.js";

const REFRESH_MS = 2000;
const STARTABLE = new Set(["ready", "failed"]);

export function taskPage(main, route, ctx) {
  const taskId = route.arg;
  const startButton = h("button", {type: "button", id: "start", disabled: true, onclick: start}, "Start");
  const cancelButton = h("button", {type: "button", id: "cancel", class: "danger", disabled: true,
    onclick: cancel}, "Cancel task");
  const actionStatus = h("div", {id: "action-status"});
  const summary = h("dl", {class: "facts", id: "summary"});
  const condition = h("div", {class: "json", id: "condition"});
  const result = h("div", {class: "json", id: "result"});
  const history = h("ol", {class: "timeline", id: "history"});
  const problem = h("div", {id: "problem"});
  const view = liveView({
    load: async () => {
      const [statuses, answer] = await Promise.all([api.status([taskId]), api.result(taskId)]);
      return [statuses.status[0], answer];
    },
    render: ([state, answer]) => render(state, answer),
    problem, failed: ctx.failed, ms: REFRESH_MS});

  function render(state, answer) {
    startButton.disabled = !STARTABLE.has(answer.status);
    startButton.textContent = answer.status === "failed" ? "Run again" : "Start";
    cancelButton.disabled = ENDED.has(answer.status);
    fill(summary, fact("Service", h("a", {href: tasksHash({service: answer.service})}, answer.service)),
      fact("Status", chip(answer.status, answer.cancelled ? "(cancelled)" : ""), "f-status"),
      fact("Message", message(state.message), "f-message"),
      state.pending_reason !== null && fact("Why it waits", state.pending_reason, "f-pending"),
      state.queue_position !== null && fact("Queue position", `${state.queue_position} ahead`, "f-position"),
      answer.status === "running" && fact("Progress", progress(state.progress, "f-progress")),
      fact("Priority", answer.priority),
      fact("Attempt", answer.attempt, "f-attempt"),
      fact("Created", time(answer.create_time)),
      fact("Started", time(answer.start_time)),
      fact("Ended", time(answer.end_time)),
      fact("Took", duration(answer.spend_time)));
    fill(condition, jsonView(answer.condition));
    fill(result, answer.data === null
      ? h("p", {class: "help"}, answer.status === "finished" ? "No result." : "Not finished yet.")
      : jsonView(answer.data));
    fill(history, answer.history.length === 0 ? h("li", {class: "help"}, "Nothing yet.") :
      answer.history.map((event) => h("li", {},
        time(event.time), " ", chip(event.status), " ",
        h("span", {class: "attempt"}, `attempt ${event.attempt}`),
        event.message !== null && h("span", {class: "event-message"}, message(event.message)))));
  }

  async function act(what, done) {
    fill(actionStatus);
    try {
      await what();
      fill(actionStatus, notice(done, "info"));
    } catch (error) {
      fill(actionStatus, ctx.failed(error));
    }
    view.now();
  }

  async function start() {
    const again = startButton.textContent !== "Start";
    if (await confirmDialog(`${again ? "Run" : "Start"} task ${taskId}?`, again ? "Run again" : "Start")) {
      await act(() => api.start(taskId), "Started.");
    }
  }

  async function cancel() {
    const reason = h("input", {id: "cancel-reason", type: "text", maxlength: 500, autocomplete: "off"});
    const field = h("p", {}, h("label", {for: "cancel-reason"}, "Reason (optional)"), reason);
    if (await confirmDialog(`Cancel task ${taskId}? It ends failed.`, "Cancel task", field)) {
      await act(() => api.cancel(taskId, reason.value.trim()), "Cancel asked.");
    }
  }

  fill(main,
    h("p", {class: "crumbs"}, h("a", {href: tasksHash()}, "← Tasks")),
    h("h1", {}, "Task ", h("span", {class: "mono task-id", id: "task-id"}, taskId)),
    problem,
    h("div", {class: "toolbar"}, startButton, cancelButton, view.controls),
    actionStatus,
    h("section", {"aria-labelledby": "h-summary", class: "card"},
      h("h2", {id: "h-summary"}, "Where it is"), summary),
    h("div", {class: "columns"},
      h("section", {"aria-labelledby": "h-condition", class: "card"},
        h("h2", {id: "h-condition"}, "Condition"), condition),
      h("section", {"aria-labelledby": "h-result", class: "card"},
        h("h2", {id: "h-result"}, "Result"), result)),
    h("section", {"aria-labelledby": "h-history", class: "card"},
      h("h2", {id: "h-history"}, "History"), history));
  return {stop: view.stop};
}

function fact(name, value, id) {
  return [h("dt", {}, name), h("dd", {id}, value)];
}

function message(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : brief(value, 300);
}
