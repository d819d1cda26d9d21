"""Celery entry point: `celery -A push.worker:celery worker --beat` (or `beat` apart, once)."""
from handbook import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
