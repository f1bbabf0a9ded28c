"""The PostgreSQL side of backups: libpq parameters of Django's connection, connecting,
finding a pg_dump/pg_restore that fits the server, and running them."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from django.db import connections
from psycopg import sql

# Connection settings of Django's OPTIONS that libpq also reads from the environment.
_LIBPQ_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "passfile": "PGPASSFILE",
    "options": "PGOPTIONS",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


class BackupError(Exception):
    """A backup could not be taken or read; the message says what to do."""


# --- connecting and the PostgreSQL tools --------------------------------------------------


def libpq_params(dbname: str | None = None, alias: str = "default") -> dict[str, str]:
    """libpq parameters of Django's connection (optionally to another database on the same
    server). Read from the connection, not settings.DATABASES as first configured, so that
    under pytest it is the test database."""
    conf = connections[alias].settings_dict
    params = {
        "dbname": dbname or conf["NAME"],
        "host": conf.get("HOST") or "",
        "port": str(conf.get("PORT") or ""),
        "user": conf.get("USER") or "",
        "password": conf.get("PASSWORD") or "",
    }
    for key, value in (conf.get("OPTIONS") or {}).items():
        if key in _LIBPQ_ENV and isinstance(value, str | int):
            params[key] = str(value)
    return {key: value for key, value in params.items() if value}


def connect(params: dict[str, str], *, autocommit: bool) -> psycopg.Connection:
    try:
        return psycopg.connect(**params, autocommit=autocommit)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise BackupError(f"Cannot connect to database {params['dbname']}: {exc}") from exc


def tool_env(params: dict[str, str]) -> dict[str, str]:
    """The environment for pg_dump / pg_restore: the password goes through PGPASSWORD,
    never the command line, where `ps` would show it."""
    return {**os.environ, **{_LIBPQ_ENV[key]: value for key, value in params.items()}}


def database_url(params: dict[str, str]) -> str:
    """A DATABASE_URL for the settings (dj-database-url) naming the same connection."""
    userinfo = quote(params.get("user", ""), safe="")
    if params.get("password"):
        userinfo += ":" + quote(params["password"], safe="")
    netloc = (userinfo + "@" if userinfo else "") + quote(params.get("host", ""), safe="")
    if params.get("port"):
        netloc += ":" + params["port"]
    query = {
        k: v for k, v in params.items() if k not in {"host", "port", "user", "password", "dbname"}
    }
    url = f"postgresql://{netloc}/{quote(params['dbname'], safe='')}"
    return url + ("?" + urlencode(query) if query else "")


def _version(text: str) -> tuple[int, int] | None:
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def server_version(conn: psycopg.Connection) -> tuple[int, int]:
    number = conn.info.server_version  # e.g. 150020 for 15.20
    return number // 10000, number % 10000


def _tool_version(bin_dir: Path) -> tuple[int, int] | None:
    dump, restore = bin_dir / "pg_dump", bin_dir / "pg_restore"
    if not (os.access(dump, os.X_OK) and os.access(restore, os.X_OK)):
        return None
    try:
        out = subprocess.run(  # noqa: S603 - a fixed argument list
            [str(dump), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return _version(out.split("PostgreSQL)", 1)[-1])


def _candidate_bin_dirs() -> list[Path]:
    candidates: list[Path] = []
    # The pgserver wheel's own binaries (what `pgserver._commands.POSTGRES_BIN_PATH`
    # points at), found without importing the dev-only package.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    # Debian and Ubuntu install each major version side by side here.
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    candidates.extend(debian)
    unique: list[Path] = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def pg_bin_dir(server: tuple[int, int]) -> tuple[Path, tuple[int, int]]:
    """The directory of the pg_dump and pg_restore to use with a server of this version,
    and their version.

    pg_dump refuses a server newer than itself, and a newer one may write SQL an older
    server does not know, so both come from one directory that fits the server:
    PG_BIN_DIR when set (trusted as it is); otherwise, among the pgserver wheel's
    binaries (the private server of `make test`), those on PATH and Debian's
    /usr/lib/postgresql/*/bin, the server's exact version first, then its major
    version, then the nearest newer major.
    """
    override = os.environ.get("PG_BIN_DIR")
    if override:
        version = _tool_version(Path(override))
        if version is None:
            raise BackupError(f"PG_BIN_DIR={override} has no working pg_dump and pg_restore.")
        return Path(override), version
    found = [(d, v) for d in _candidate_bin_dirs() if (v := _tool_version(d)) is not None]
    for fits in (
        lambda v: v == server,
        lambda v: v[0] == server[0],
        lambda v: v[0] > server[0],
    ):
        matching = [(d, v) for d, v in found if fits(v)]
        if matching:
            # The lowest fitting major version, of it the latest minor (bug fixes); on a
            # tie the first candidate, so pgserver's own binaries for its own server.
            return min(matching, key=lambda dv: (dv[1][0], -dv[1][1]))
    seen = ", ".join(f"{d} ({v[0]}.{v[1]})" for d, v in found) or "none"
    raise BackupError(
        f"No pg_dump/pg_restore fits PostgreSQL {server[0]}.{server[1]} (found: {seen}). "
        f"Install the client of that version or set PG_BIN_DIR to its bin directory."
    )


def row_counts(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    counts = {}
    for table in tables:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        counts[table] = conn.execute(query).fetchone()[0]  # type: ignore[index]
    return counts


def run(args: list[str], *, env: dict[str, str], what: str) -> None:
    result = subprocess.run(args, env=env, capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")
