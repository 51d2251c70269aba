"""Build the api: `create_app(config, store) -> falcon.App`."""

from __future__ import annotations

import falcon

from taskmill.config import Config
from taskmill.store import TaskStore
from taskmill_api import errors, openapi, ui
from taskmill_api.auth import Tokens
from taskmill_api.middleware import Audit, JsonBody, RequestContext, TokenAuth
from taskmill_api.rate_limits import RateLimits
from taskmill_api.resources import Health, Metrics, OpenApi, Tasks

ROUTES = {
    "/api/create_task": "create",
    "/api/status_task": "status",
    "/api/update_status_task": "update_status",
    "/api/heartbeat_task": "heartbeat",
    "/api/result_task": "result",
    "/api/tasks": "list",
    "/api/start_task": "start",
    "/api/update_task": "update",
    "/api/service_task": "services",
    "/api/service_stats": "service_stats",
    "/api/cancel_task": "cancel",
}


def create_app(config: Config, store: TaskStore, limits: RateLimits | None = None) -> falcon.App:
    """Return the WSGI app serving the contract over the given store (the tokens' rate
    limits in `limits`: the instance's shared buckets; by default the process's own)."""
    # TokenAuth after JsonBody: a refused call's audit line names the task it asked about.
    app = falcon.App(middleware=[
        RequestContext(), Audit(), JsonBody(config.api.max_body_bytes),
        TokenAuth(Tokens(config.tokens), limits or RateLimits(config.tokens))])
    app.req_options.strip_url_path_trailing_slash = True
    errors.register(app)
    tasks = Tasks(config, store)
    for route, suffix in ROUTES.items():
        app.add_route(route, tasks, suffix=suffix)
    health = Health(store)
    app.add_route("/healthz", health)
    app.add_route("/readyz", health, suffix="ready")
    app.add_route("/metrics", Metrics())
    app.add_route("/api/openapi.json", OpenApi(openapi.document(config)))
    ui.add_routes(app)
    return app
