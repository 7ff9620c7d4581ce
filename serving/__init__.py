"""The gunicorn worker class that gunicorn.conf.py names (`worker.py`).

Imported by gunicorn (the master loads the class before any worker forks), so nothing here
imports the app, Flask or a feature package.
"""
