"""WSGI entry point: ``gunicorn -c etc/gunicorn.conf.py wsgi:app``."""

from hmacfs.app import create_app

app = create_app()
