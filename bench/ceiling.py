"""The ceiling of the api benchmark: a trivial Falcon route under the api's gunicorn setup."""

from __future__ import annotations

import falcon


class Ok:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"result": "ok"}


app = falcon.App()
app.add_route("/ok", Ok())
