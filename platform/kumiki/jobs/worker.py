"""The worker process: its own Flask app (one per process) and a huey consumer.

``kumiki worker`` calls :func:`run_worker`. huey's own consumer works too:
``huey_consumer kumiki.jobs.worker.huey`` (configuration from the KUMIKI_* environment).
"""
from __future__ import annotations

import logging
import threading

from flask import Flask

from kumiki.config import Config

_app: Flask | None = None
_lock = threading.Lock()


def worker_app(config: Config | None = None) -> Flask:
    """This process's kumiki app, built once (config from the environment unless given)."""
    global _app
    with _lock:
        if _app is None:
            from kumiki.app import create_app, freeze_startup_objects
            _app = create_app(config)
            freeze_startup_objects()
        return _app


def run_worker(config: Config | None = None, workers: int = 1, *, worker_type: str = "thread",
               **consumer_options) -> None:
    """Consume the job queue in the foreground until SIGINT/SIGTERM."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = worker_app(config)
    st = app.extensions["kumiki"]
    huey = st.huey
    if huey.immediate:
        raise RuntimeError("KUMIKI_JOBS_IMMEDIATE is set: jobs run inline, there is no queue to consume")
    if worker_type == "process":
        st.engine.dispose()   # forked children must open their own connections
    consumer = huey.create_consumer(workers=workers, worker_type=worker_type, **consumer_options)
    consumer.run()


def __getattr__(name: str):
    if name == "huey":
        return worker_app().extensions["kumiki"].huey
    raise AttributeError(name)
