// The public contract, called with the token the user gave. The token lives in this
// tab's session storage only: never in a URL, never sent anywhere but this api.

const KEY = "taskmill.token";

export const session = {
  get token() { return sessionStorage.getItem(KEY); },
  keep(token) { sessionStorage.setItem(KEY, token); },
  forget() { sessionStorage.removeItem(KEY); },
};

/** What the api answered instead of ok: its HTTP status (0: not reached) and message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  /** The token is missing or wrong (not: lacks a right). */
  get unauthorized() { return this.status === 401; }
}

async function call(route, body = {}) {
  let resp;
  try {
    resp = await fetch(`/api/${route}`, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": `Bearer ${session.token ?? ""}`},
      body: JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "the api cannot be reached; is it running?");
  }
  let answer = null;
  try {
    answer = await resp.json();
  } catch {
    // not JSON: a proxy's page, say; the status line says enough
  }
  if (!resp.ok || answer?.result !== "ok") {
    throw new ApiError(resp.status, answer?.message ?? `HTTP ${resp.status} ${resp.statusText}`);
  }
  return answer;
}

export const api = {
  services: () => call("service_task"),
  serviceStats: () => call("service_stats"),
  list: ({page = 1, size = 20, service, status} = {}) =>
    call("tasks", {page, p_size: size, ...(service && {service}), ...(status && {status})}),
  status: (ids) => call("status_task", {data: ids.map((task_id) => ({task_id}))}),
  result: (taskId) => call("result_task", {data: {task_id: taskId}}),
  start: (taskId) => call("start_task", {task_id: taskId}),
  cancel: (taskId, reason) => call("cancel_task", {task_id: taskId, ...(reason && {reason})}),
};
