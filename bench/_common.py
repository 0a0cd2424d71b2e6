"""Shared helpers for kumiki's benchmarks: machine description, timing and percentiles, a result
table with targets, the HTTP server (gunicorn) as a subprocess, and throw-away PostgreSQL schemas.

Only the standard library, SQLAlchemy and kumiki are imported here; ``requests`` is imported by
the benchmarks that talk HTTP.
"""
from __future__ import annotations

import atexit
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import shlex
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"


# ---------------------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info(**extra: Any) -> dict:
    """What the figures were measured on (extra keys, e.g. the PostgreSQL version, are appended)."""
    u = platform.uname()
    mem = _mem_total_gib()
    info = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1) if mem is not None else None,
        "os": f"{u.system} {u.release} {u.machine}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
    }
    info.update({k: v for k, v in extra.items() if v is not None})
    return info


def print_header(title: str, info: dict) -> None:
    print("=" * 78)
    print(title)
    print("=" * 78)
    width = max(len(k) for k in info)
    for k, v in info.items():
        if k == "memory_gib":
            k, v = "memory", f"{v} GiB"
        print(f"  {k:<{width}}  {v}")
    print()


# ---------------------------------------------------------------------------------------- timing
def percentile(sorted_samples: list[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of already sorted samples."""
    if not sorted_samples:
        return float("nan")
    k = (len(sorted_samples) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return sorted_samples[lo]
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (k - lo)


def summarise_ms(seconds: Iterable[float]) -> dict:
    """n, min, p50, p95, p99, max and mean of durations in seconds, reported in milliseconds."""
    s = sorted(x * 1000 for x in seconds)
    if not s:
        return {"n": 0}
    return {"n": len(s), "min": round(s[0], 3), "p50": round(percentile(s, 50), 3),
            "p95": round(percentile(s, 95), 3), "p99": round(percentile(s, 99), 3),
            "max": round(s[-1], 3), "mean": round(statistics.fmean(s), 3)}


def time_calls(fn: Callable[[int], Any], n: int, warmup: int = 0) -> list[float]:
    """Call fn(i) warmup times untimed, then n times timed; return the n durations in seconds.

    fn may return a float to report its own duration (e.g. when it does untimed set-up first).
    """
    for i in range(warmup):
        fn(-1 - i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        own = fn(i)
        out.append(own if isinstance(own, float) else time.perf_counter() - t0)
    return out


# ---------------------------------------------------------------------------------------- results
@dataclass
class Figure:
    """One line of the result table. ``checks`` are (label, measured, op, target) tuples."""
    name: str
    value: str
    p95: str = ""
    target: str = ""
    checks: list[tuple[str, float, str, float]] = field(default_factory=list)

    @property
    def result(self) -> str:
        if not self.checks:
            return "info"
        missed = [label for label, v, op, t in self.checks if not _holds(v, op, t)]
        return "PASS" if not missed else "MISS (" + ", ".join(missed) + ")"


def _holds(value: float, op: str, target: float) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return value >= target if op == ">=" else value <= target


def render_table(rows: list[tuple[str, list[Figure]]]) -> str:
    """rows: [(section title, figures)] -> a plain-text table."""
    head = ("Figure", "p50 / value", "p95", "Target", "Result")
    body = []
    for section, figs in rows:
        body.append((f"[{section}]", "", "", "", ""))
        for f in figs:
            body.append(("  " + f.name, f.value, f.p95, f.target, f.result))
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]

    def line(r):
        cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]),
                 r[3].ljust(widths[3]), r[4]]
        return "  ".join(cells).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep, *(line(r) for r in body)])


def fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v:,.1f} ms"


def fmt_rate(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f} rec/s"


def save_json(path: str | os.PathLike, data: dict) -> None:
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------- server
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wsgi_target() -> str:
    """The gunicorn app spec: kumiki.wsgi:app when that module exists, else the factory."""
    return "kumiki.wsgi:app" if importlib.util.find_spec("kumiki.wsgi") else "kumiki.app:create_app()"


_LIVE_SERVERS: list["Server"] = []


def _stop_all() -> None:
    for s in list(_LIVE_SERVERS):
        s.stop()


def _on_signal(signum, _frame):
    _stop_all()
    raise SystemExit(128 + signum)


atexit.register(_stop_all)


class Server:
    """gunicorn serving kumiki on 127.0.0.1 as a subprocess (its own process group).

    Use as a context manager; the process group is terminated on exit, on an exception, at
    interpreter exit and on SIGINT/SIGTERM.
    """

    def __init__(self, env: dict[str, str], *, workers: int = 2, log_path: str | os.PathLike | None = None,
                 host: str = "127.0.0.1", port: int | None = None, extra_args: list[str] | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.env = {**os.environ, **env}
        self.workers = workers
        self.log_path = Path(log_path) if log_path else Path(f"/tmp/kumiki-bench-gunicorn-{self.port}.log")
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "Server":
        gunicorn = VENV_BIN / "gunicorn"
        cmd = [str(gunicorn) if gunicorn.exists() else "gunicorn", "-w", str(self.workers),
               "-b", f"{self.host}:{self.port}", "--log-level", "warning", *self.extra_args, wsgi_target()]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(ROOT))
        _LIVE_SERVERS.append(self)
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(sig, _on_signal)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not listen on {self.host}:{self.port} within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if self in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(self)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)   # the group we created: gunicorn and its workers
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "Server":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_http(session, url: str, headers: dict | None = None, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 200 (the workers have finished importing and migrating)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = session.get(url, headers=headers, timeout=10)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:300]}"
        except Exception as exc:  # noqa: BLE001 - connection refused while the workers boot
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s ({last})")


# ---------------------------------------------------------------------------------------- postgres
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pg_driver_url(url: str) -> str:
    """SQLAlchemy URL with the psycopg (3) driver, as kumiki.db.make_engine uses."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def pg_schema_url(url: str, schema: str) -> str:
    """The URL with search_path set to ``schema`` (what KUMIKI_DATABASE_URL gets)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


class PgSchema:
    """A fresh schema for one run: created on enter, dropped on exit unless keep=True."""

    def __init__(self, url: str, prefix: str = "bench_", keep: bool = False, name: str | None = None):
        self.url = url
        self.name = name or prefix + uuid.uuid4().hex[:10]
        self.keep = keep
        self.server_version: str | None = None

    def __enter__(self) -> "PgSchema":
        from sqlalchemy import create_engine, text
        engine = create_engine(pg_driver_url(self.url))
        try:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.name}"'))
                self.server_version = conn.execute(text("SHOW server_version")).scalar()
        finally:
            engine.dispose()
        return self

    @property
    def schema_url(self) -> str:
        return pg_schema_url(self.url, self.name)

    def drop(self) -> None:
        from sqlalchemy import create_engine, text
        engine = create_engine(pg_driver_url(self.url))
        try:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        finally:
            engine.dispose()

    def __exit__(self, *exc) -> None:
        if not self.keep:
            self.drop()
