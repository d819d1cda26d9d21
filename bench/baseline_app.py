"""The bare Flask app the reading figures are compared with: `gunicorn bench.baseline_app:app`.

`GET /<name>` answers the JSON document `$BENCH_BASELINE_DIR/<name>.json` (a real response captured by
bench/run.py), serialised on every request with the handbook's JSON settings, so the body has the same
size as the real one. No database, no authentication: the floor that Flask and gunicorn set.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from flask import Flask, Response, abort, request

app = Flask(__name__)
app.json.ensure_ascii = False
app.json.sort_keys = False

BODIES = {path.stem: json.loads(path.read_text("utf-8"))
          for path in Path(os.environ.get("BENCH_BASELINE_DIR", ".")).glob("*.json")}


TAGS = {name: hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest() for name, body in BODIES.items()}


@app.get("/<name>")
def body(name: str):
    """The body with its ETag; 304 when If-None-Match has it (the bare floor of a conditional GET)."""
    if name not in BODIES:
        abort(404)
    if TAGS[name] in request.if_none_match:
        response = Response(status=304)
    else:
        response = app.json.response(BODIES[name])
    response.set_etag(TAGS[name])
    return response
