"""Find or start a PostgreSQL server for the demo, and say which one is used.

Order: ``REVIEWLENS_PG_URL`` if set; a server answering on 127.0.0.1:5432; a throwaway cluster in
``.demo/pg`` made with the machine's ``initdb``/``pg_ctl`` (as the ``postgres`` user when run as
root, since they refuse to run as root); else the pip-installable ``pgserver`` (bundles PostgreSQL).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

DEMO_PORT = 54329


@dataclass
class Server:
    url: str  # server URL without a database name, or with {db} where the name goes
    how: str

    def database_url(self, name: str) -> str:
        return self.url.format(db=name) if "{db}" in self.url else f"{self.url}/{name}"


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(Server(url, "").database_url("postgres"), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    return None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _local_cluster(data_dir: Path) -> Server | None:
    initdb, pg_ctl = _find_bin("initdb"), _find_bin("pg_ctl")
    if not (initdb and pg_ctl):
        return None
    url = f"postgresql://postgres@127.0.0.1:{DEMO_PORT}"
    if _answers(url):
        return Server(url, f"the demo's own cluster in {data_dir} (already running on port {DEMO_PORT})")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None
        as_user = ["runuser", "-u", "postgres", "--"]
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if as_user:
        os.chmod(data_dir.parent, 0o777)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            [
                *as_user,
                initdb,
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if not _port_free(DEMO_PORT):
        raise RuntimeError(f"Port {DEMO_PORT} is taken by something that is not PostgreSQL; free it.")
    subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data_dir),
            "-l",
            str(data_dir / "server.log"),
            "-w",
            "-o",
            f"-p {DEMO_PORT} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return Server(url, f"a throwaway cluster in {data_dir} on port {DEMO_PORT} ({initdb})")


def _pgserver(data_dir: Path) -> Server:
    try:
        import pgserver  # type: ignore[import-not-found]
    except ImportError:
        subprocess.run(["python", "-m", "pip", "install", "-q", "pgserver==0.1.4"], check=True)
        import pgserver  # type: ignore[import-not-found]
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode=None)
    # pgserver listens on a Unix socket in its data directory, not on TCP.
    return Server(server.get_uri("{db}"), f"pgserver's bundled PostgreSQL in {data_dir}")


def find_or_start(demo_dir: Path) -> Server:
    """A reachable PostgreSQL server for the demo."""
    configured = os.environ.get("REVIEWLENS_PG_URL")
    if configured:
        return Server(configured.rstrip("/"), "the server in REVIEWLENS_PG_URL")
    local = "postgresql://postgres@127.0.0.1:5432"
    if _answers(local):
        return Server(local, "the PostgreSQL server already running on 127.0.0.1:5432")
    cluster = _local_cluster(demo_dir / "pg")
    if cluster is not None:
        return cluster
    return _pgserver(demo_dir / "pgserver")


def ensure_database(server: Server, name: str) -> str:
    """Create the database if needed; return its URL."""
    with psycopg.connect(server.database_url("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return server.database_url(name)
