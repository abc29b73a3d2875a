"""`make bench-peers`: jobsite's workers beside bare RQ and the Django peers, on one machine.

Each peer runs from a venv of its own (``.bench-peers/<peer>``, pinned in
``requirements/<peer>.txt``) against a redis-server and PostgreSQL databases of this run's
own; ``run.py`` (in the project's venv) drives them. Nothing here imports jobsite except the
rows that run jobsite's workers, so the peers' venvs need only what they pin.
"""
