"""The console: server-rendered pages for people (secretaries, committees, the board, admins, members
without the app), the second face beside `api/` over the same domain code.

Every page calls the functions of handbook/, content/ and push/ that the API calls; the console adds
no business rule, query or permission check of its own (it asks `handbook.permissions` only to decide
which buttons to show; the domain call decides what is allowed). Domain packages never import it.

- Sessions (`console.session`): a signed, HttpOnly, SameSite=Lax cookie (Secure on HTTPS) holding the
  id of an `auth_sessions` row opened by `handbook.auth.login`, the very row an app login opens. Every
  request checks that row with the API's own `load_principal`, so logout, a password change, a removal
  or a revocation ends a console session on the next request, on every instance.
- CSRF: every POST to the console carries Flask-WTF's token (checked once, before any view runs).
- Text: Flask-Babel, English msgids, Vietnamese by default (`console/translations`, compiled from the
  .po file in memory at start-up: no build step, no .mo file in the repository).
- No JavaScript, no CDN: one small stylesheet, charts drawn as SVG on the server.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from console import admin, board, i18n, meetings, quizzes, session, views  # noqa: F401  (they add pages to views.bp)

    # Cookie and CSRF settings: config.py (CONSOLE_SESSION_HOURS, SESSION_COOKIE_*, WTF_CSRF_*).
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True   # smaller pages
    session.init_app(app)
    i18n.init_app(app)
    app.register_blueprint(views.bp)
