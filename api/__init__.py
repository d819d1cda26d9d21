"""The HTTP layer: flask-smorest blueprints and marshmallow schemas only. Domain logic lives elsewhere."""
from __future__ import annotations

import importlib

from flask import Flask, Response

# Blueprint modules under /api/v1; each has `blp` and `PREFIX`.
MODULES = ("auth", "me", "devices", "documents", "acknowledgements", "followup", "attachments",
           "admin_documents", "series", "audit", "notifications", "members", "meetings", "quizzes")


def init_app(app: Flask) -> None:
    from api import docs, ops
    from api.schemas import document_rules, input_string_pattern
    from handbook.extensions import api, close_reader

    api.ma_plugin.converter.add_attribute_function(input_string_pattern)
    for name in MODULES:
        module = importlib.import_module(f"api.{name}")
        api.register_blueprint(module.blp, url_prefix=f"/api/v1{module.PREFIX}")
    api.register_blueprint(ops.blp, url_prefix="/")
    document_rules(api.spec.components.schemas)
    app.register_blueprint(docs.bp)   # /docs: Swagger UI from the pinned package, not a CDN
    app.teardown_request(close_reader)
    from flask_compress import Compress

    Compress(app)   # JSON ≥ COMPRESS_MIN_SIZE, brotli or gzip (config.py)

    @app.after_request
    def _no_content_has_no_type(response: Response) -> Response:
        if response.status_code == 204:
            response.headers.pop("Content-Type", None)
        return response
