// Sign in: the user pastes a token; it is checked by one call before it is kept.

import {api, session} from "./api.js";
import {fill, h, notice} from "./dom.js";

export function loginPage(main, {message, onSignedIn}) {
  const input = h("input", {id: "token", name: "token", type: "password", autocomplete: "off",
    spellcheck: "false", required: true, "aria-describedby": "token-help"});
  const status = h("div", {id: "login-status"}, message && notice(message));
  const button = h("button", {type: "submit", id: "sign-in"}, "Sign in");

  async function signIn(event) {
    event.preventDefault();
    button.disabled = true;
    fill(status, notice("Checking the token…", "info"));
    session.keep(input.value.trim());
    try {
      await api.services();
      onSignedIn();
    } catch (error) {
      session.forget();
      fill(status, notice(error.message));
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  fill(main, h("form", {class: "card login", onsubmit: signIn},
    h("h1", {}, "Sign in"),
    h("label", {for: "token"}, "API token"),
    input,
    h("p", {id: "token-help", class: "help"},
      "A client or admin token. It stays in this browser tab and is forgotten when the tab closes."),
    button,
    status));
  input.focus();
  return {stop() {}};
}
