"""The operators' dashboard: static files served at /ui, no token needed to load them.

The page is a small set of ES modules (`ui/`) that asks the token of whoever uses it,
keeps it in the browser's session storage and calls the public contract with it, like any
client. The files are read once when the app is built and served from memory by name:
nothing a request names reaches the file system. Every answer carries a Content-Security-
Policy that allows this origin's scripts, styles and API only (no inline script or style,
no other origin, no framing).
"""

from __future__ import annotations

import hashlib
from importlib import resources

import falcon

PREFIX = "/ui"
INDEX = "index.html"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidated each load (an upgrade shows at once), by the ETag.
    "Cache-Control": "no-cache",
}


def is_ui(path: str) -> bool:
    """Whether a request path is the dashboard's (served without a token)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


class Files:
    """The dashboard's files by name, with their media type and ETag."""

    def __init__(self) -> None:
        folder = resources.files("taskmill_api") / "ui"
        self._files: dict[str, tuple[bytes, str, str]] = {}
        for item in folder.iterdir():
            kind = TYPES.get("." + item.name.rpartition(".")[2])
            if kind is not None:
                data = item.read_bytes()
                self._files[item.name] = (data, kind, hashlib.sha256(data).hexdigest()[:16])
        if INDEX not in self._files:
            raise RuntimeError(f"the dashboard's {INDEX} is missing from taskmill_api/ui")

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str = INDEX) -> None:
        found = self._files.get(name)
        if found is None:
            raise falcon.HTTPNotFound(description=f"{PREFIX}/{name} is not a file of the dashboard")
        data, kind, etag = found
        resp.set_headers(HEADERS)
        resp.etag = etag
        if etag in (req.if_none_match or ()):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = kind
        resp.data = data

    def on_head(self, req: falcon.Request, resp: falcon.Response, name: str = INDEX) -> None:
        self.on_get(req, resp, name)
        resp.data = None


def add_routes(app: falcon.App) -> None:
    """Serve the dashboard at /ui (its page) and /ui/<file>."""
    files = Files()
    app.add_route(PREFIX, files)
    app.add_route(PREFIX + "/{name}", files)
