"""gunicorn extensions: the worker class and the access logger that gunicorn.conf.py names.

Imported by gunicorn (the master loads both classes before any worker forks), so nothing here
imports the app, Flask or a feature package.
"""
