// The dashboard: signs the user in, then shows the page the address names
// (#/tasks?service=…&status=…&page=…, #/task/<id>, #/services).

import {session} from "./api.js";
import {fill, h, notice} from "./dom.js";
import {zone} from "./format.js";
import {loginPage} from "./login.js";
import {servicesPage} from "./services.js";
import {taskPage} from "./task.js";
import {tasksPage} from "./tasks.js";

const PAGES = {tasks: tasksPage, task: taskPage, services: servicesPage};
const TITLES = {tasks: "Tasks", task: "Task", services: "Services"};

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const logout = document.getElementById("logout");
let current = null;

/** "#/task/ts_x?a=1" → {page: "task", arg: "ts_x", query}. */
function parse(hash) {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = path.split("/");
  return {page: page || "tasks", arg: decodeURIComponent(rest.join("/")), query: new URLSearchParams(query)};
}

const ctx = {
  go(hash) { location.hash = hash; },
  /** What to show for a failed call; a refused token signs the user out. */
  failed(error) {
    if (error.unauthorized) {
      session.forget();
      queueMicrotask(() => show(`Signed out: ${error.message}`));
    }
    return notice(error.message);
  },
};

function show(message) {
  current?.stop();
  const signedIn = Boolean(session.token);
  nav.hidden = !signedIn;
  logout.hidden = !signedIn;
  if (!signedIn) {
    document.title = "Sign in · Taskmill";
    current = loginPage(main, {message, onSignedIn: () => show()});
    return;
  }
  const route = parse(location.hash);
  const page = PAGES[route.page];
  for (const link of nav.querySelectorAll("a")) {
    const here = link.dataset.page === route.page || (route.page === "task" && link.dataset.page === "tasks");
    if (here) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  if (!page) {
    document.title = "Not found · Taskmill";
    current = {stop() {}};
    fill(main, h("h1", {}, "Not found"), notice(`There is no page ${location.hash}.`),
      h("a", {href: "#/tasks"}, "Go to the tasks"));
    return;
  }
  document.title = `${TITLES[route.page]}${route.arg ? ` ${route.arg}` : ""} · Taskmill`;
  current = page(main, route, ctx);
}

logout.addEventListener("click", () => {
  session.forget();
  show("Signed out.");
});
window.addEventListener("hashchange", () => {
  show();
  main.focus({preventScroll: true});  // a screen reader starts at the new page
});
document.getElementById("zone").textContent = zone;
show();
