"""`/docs`: Swagger UI on the served OpenAPI document, entirely from this app (no CDN, works offline).

Swagger UI's files come from the pinned `swagger-ui-bundle` package; the page starts it with a script
file of ours, so its CSP allows scripts from this origin only (no inline script). Swagger UI sets inline
styles, hence `style-src 'unsafe-inline'` on these paths only.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, render_template_string, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("docs", __name__)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
VENDOR = Path(str(swagger_ui_path))
OWN = Path(__file__).resolve().parent / "static"
PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="{{ url_for('docs.asset', filename='swagger-ui.css') }}"></head>
<body data-spec-url="{{ spec_url }}">
<div id="swagger-ui"></div>
<script src="{{ url_for('docs.asset', filename='swagger-ui-bundle.js') }}"></script>
<script src="{{ url_for('docs.asset', filename='swagger-ui-standalone-preset.js') }}"></script>
<script src="{{ url_for('docs.asset', filename='docs-init.js') }}"></script>
</body>
</html>
"""
ASSETS = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png",
          "favicon-16x16.png"}


@bp.after_request
def _csp(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    return response


@bp.route("/docs")
def page():
    return render_template_string(PAGE, title=current_app.config["API_TITLE"],
                                  spec_url=url_for("api-docs.openapi_json"))


@bp.route("/docs/assets/<path:filename>")
def asset(filename: str):
    if filename == "docs-init.js":
        return send_from_directory(OWN, filename, max_age=3600)
    if filename not in ASSETS:
        from flask import abort

        abort(404)
    return send_from_directory(VENDOR, filename, max_age=86400)
