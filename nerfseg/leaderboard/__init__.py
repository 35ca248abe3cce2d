"""The nerfseg leaderboard: a results store, paper-style tables and a small submission service.

- ``store``: methods, teams, submissions and their results in SQL (SQLite by default, any SQLAlchemy URL,
  e.g. PostgreSQL, for a public server); the schema is created and migrated by ordered steps.
- ``tables``: the paper's Table 1 layout rendered as markdown, CSV, HTML, LaTeX (booktabs) or JSON.
- ``worker``: evaluates queued submissions outside the web requests, with a lease so a crash is retried.
- ``server``: the FastAPI app (public page, upload form, JSON API for teams); needs the ``server`` extra.
- ``cli``: ``nerfseg submit`` and ``nerfseg leaderboard show|add-reported|add-team|serve|worker``.

Nothing here imports torch: a leaderboard host installs numpy/h5py/pillow and the web stack only.
"""
