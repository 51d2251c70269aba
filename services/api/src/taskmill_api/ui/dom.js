// Building the page from data. Text always goes in as text nodes and attribute values,
// never as markup: whatever a task's condition or message holds is shown, not run.

/** An element: h("a", {href: "#/x", class: "link"}, "text", child, [more]). Attributes
 * whose value is null, undefined or false are left out; `on<event>` adds a listener. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace what el holds. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A message for the user: role alert for errors (read out at once), status otherwise. */
export function notice(text, kind = "error") {
  return h("p", {class: `notice ${kind}`, role: kind === "error" ? "alert" : "status"}, text);
}

/** Ask before doing something: a modal dialog with the question, any `extra` fields, Back
 * and the action (Enter confirms, Escape goes back). Resolves true when confirmed. */
export function confirmDialog(question, action, extra = null) {
  return new Promise((resolve) => {
    const dialog = h("dialog", {class: "confirm", "aria-labelledby": "confirm-text"},
      h("form", {method: "dialog"},
        h("p", {id: "confirm-text"}, question),
        extra,
        h("p", {class: "actions"},
          h("button", {type: "button", class: "quiet", id: "confirm-no",
            onclick: () => dialog.close("no")}, "Back"),
          h("button", {value: "yes", type: "submit", class: "danger", id: "confirm-yes"}, action))));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
