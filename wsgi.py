"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""
from handbook import create_app

app = create_app()
