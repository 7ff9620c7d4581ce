"""The WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`.

gunicorn's gevent worker monkey-patches before it imports this module (preload_app stays off),
so every socket the app creates here or later is already cooperative.
"""

from app import create_app

app = create_app()
