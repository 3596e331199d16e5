"""The production server's settings, in one place for systemd, the docs and the benchmarks.

    gunicorn -c python:commons_sync.web.gunicorn_conf "commons_sync.web.app:create_app()"

Threads rather than more processes: a webhook spends most of its time waiting for the database to
make its commit durable, and threads let PostgreSQL group those commits (2 processes for 2 cores,
4 threads each). Command-line flags or `GUNICORN_CMD_ARGS` override any of these, e.g.
`--bind 0.0.0.0:8000` or `--workers 4`.
"""

bind = "127.0.0.1:8000"
workers = 2
worker_class = "gthread"
threads = 4
accesslog = None  # the app logs each request itself, with its request id (commons_sync.logs)
