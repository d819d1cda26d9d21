"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`.

Served (not under the `flask` or `celery` command line), the app starts the embedded push worker when
no broker is configured (see push/embedded.py).
"""
import os
import sys

from handbook import create_app

app = create_app()

if os.path.basename(sys.argv[0]) not in ("flask", "celery"):
    from push import embedded

    embedded.start(app)
