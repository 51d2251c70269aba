"""The api keeps the promises of its own /api/openapi.json, checked by schemathesis.

Schemathesis reads the document the live api serves (with a token: it is not public),
generates bodies that fit it and bodies that break it, sends them over HTTP to the api of
a whole running system (workers included, so tasks really run and finish), and checks
every answer: no 5xx, a documented status code and content type, an answer body that fits
its documented schema, a body that breaks the schema refused with a 4xx.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.system import TOKEN

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("TASKMILL_SCHEMATHESIS_EXAMPLES", "50"))  # per operation and phase
CHECKS = ",".join(["not_a_server_error", "status_code_conformance", "content_type_conformance",
                   "response_headers_conformance", "response_schema_conformance",
                   "negative_data_rejection", "missing_required_header", "unsupported_method",
                   "ignored_auth"])


def test_every_answer_keeps_the_documented_promises(start_system, tmp_path: Path) -> None:
    system = start_system()
    base = f"http://127.0.0.1:{system.api_port}"
    command = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{base}/api/openapi.json",
               "--header", f"Authorization: {TOKEN}", "--checks", CHECKS,
               "--max-examples", str(EXAMPLES), "--seed", "20261201", "--workers", "1",
               "--generation-database", "none", "--no-color", "--request-timeout", "10",
               "--report", "junit", "--report-dir", str(tmp_path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]


def test_the_document_needs_a_token(start_system) -> None:
    system = start_system(workers=())
    url = f"http://127.0.0.1:{system.api_port}/api/openapi.json"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401
    refused.value.close()
    request = urllib.request.Request(url, headers={"Authorization": TOKEN})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert b'"openapi": "3.1.0"' in answer.read()
