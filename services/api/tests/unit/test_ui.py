"""The dashboard's files as the api serves them: without a token, with a Content-Security-
Policy that allows only this origin, nothing outside its folder, revalidated by ETag. And
the rules the policy relies on, read from the files themselves: no inline script or style,
no other origin, every module a file imports is served. (The dashboard at work in a real
browser: tests/e2e/test_dashboard.py.)"""

import re
from importlib import resources

import pytest
from falcon import testing

from taskmill.config import load_config
from taskmill_api.app import create_app
from tests.helpers import ROOT

UI = resources.files("taskmill_api") / "ui"
FILES = sorted(item.name for item in UI.iterdir())
IMPORT = re.compile(r"""(?:import|from)\s*(?:\{[^}]*\}\s*from\s*)?["']\./([\w.-]+)["']""")


class UntouchableStore:
    def __getattr__(self, name):
        raise AssertionError(f"serving the dashboard called store.{name}")


@pytest.fixture
def client():
    config = load_config(ROOT / "config" / "config.yaml", {"AUTH_TOKEN": "secret"})
    return testing.TestClient(create_app(config, UntouchableStore()))


def text(name: str) -> str:
    return (UI / name).read_text()


def test_the_page_is_served_without_a_token_under_a_strict_policy(client):
    answer = client.simulate_get("/ui")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>Taskmill</title>" in answer.text
    policy = dict(part.strip().split(" ", 1) for part in answer.headers["content-security-policy"].split(";"))
    assert policy == {"default-src": "'none'", "script-src": "'self'", "style-src": "'self'",
                      "img-src": "'self'", "connect-src": "'self'", "base-uri": "'none'",
                      "form-action": "'none'", "frame-ancestors": "'none'"}
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("name", FILES)
def test_each_file_is_served_with_its_type_and_revalidated_by_etag(client, name):
    answer = client.simulate_get(f"/ui/{name}")
    assert answer.status_code == 200 and answer.content == (UI / name).read_bytes()
    kind = {"js": "text/javascript", "css": "text/css", "html": "text/html", "svg": "image/svg+xml"}
    assert answer.headers["content-type"].startswith(kind[name.rpartition(".")[2]])
    again = client.simulate_get(f"/ui/{name}", headers={"If-None-Match": answer.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/..%2Fapp.py", "/ui/%2e%2e/app.py",
                                  "/ui/../openapi.py", "/ui/ui.py", "/ui/style.css/x"])
def test_nothing_but_the_dashboards_files_is_served(client, path):
    answer = client.simulate_get(path)
    assert answer.status_code == 404
    assert answer.json["result"] == "exception"


def test_the_api_still_wants_a_token(client):
    assert client.simulate_post("/api/service_stats").status_code == 401


def test_no_inline_script_or_style_and_no_other_origin():
    page = text("index.html")
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []  # every script from a file
    for name in FILES:
        if name.endswith((".html", ".js", ".svg")):
            content = text(name)
            assert not re.search(r"\sstyle=|<style", content), name
            assert not re.search(r"""\son\w+\s*=\s*["']""", content), name  # no handler attributes
            assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", content), name
            assert "innerHTML" not in content and "insertAdjacentHTML" not in content, name


def test_every_module_a_file_imports_is_served():
    imported = {found for name in FILES if name.endswith(".js") for found in IMPORT.findall(text(name))}
    assert "app.js" in text("index.html")
    assert imported and imported <= set(FILES)
    assert {name for name in FILES if name.endswith(".js")} - imported == {"app.js"}  # none unused
