"""PostgreSQL 15 from Debian's packages, run as its own cluster under .local/data/postgres."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from devstack import proc
from devstack.component import Component
from devstack.layout import APP_DB, CATALOG_DB, DB_PASSWORD, DB_USER, PREFECT_DB

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASES = (APP_DB, PREFECT_DB, CATALOG_DB)


def as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; drop to the `postgres` system user when we are root."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]


class Postgres(Component):
    name = "postgres"
    start_timeout = 60.0

    @property
    def address(self) -> str:
        return f"{self.addresses.host}:{self.addresses.postgres_port}"

    @property
    def data_dir(self) -> Path:
        return self.layout.data / "postgres"

    @property
    def socket_dir(self) -> Path:
        return self.layout.run / "postgres"

    def install(self) -> None:
        if (PG_BIN / "postgres").exists():
            return
        if os.geteuid() != 0:
            raise proc.StackError(
                "PostgreSQL 15 is missing: run `sudo apt-get install postgresql-15`, then retry."
            )
        # Keep the package from creating and starting a cluster of its own on port 5432.
        conf = Path("/etc/postgresql-common/createcluster.conf")
        conf.parent.mkdir(parents=True, exist_ok=True)
        if not conf.exists():
            conf.write_text("create_main_cluster = false\n")
        proc.run(["apt-get", "update", "-q"], "apt-get update")
        proc.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql-15"],
            "apt-get install postgresql-15",
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )

    def _connection(self) -> list[str]:
        """The client options of pg_isready and psql that reach this server."""
        return ["-h", self.addresses.host, "-p", str(self.addresses.postgres_port), "-U", DB_USER]

    def healthy(self) -> bool:
        result = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-q", *self._connection()],
            check=False,
        )
        return result.returncode == 0

    def start(self) -> int:
        if proc.port_open(self.addresses.host, self.addresses.postgres_port):
            raise proc.StackError(
                f"port {self.addresses.postgres_port} is taken by a PostgreSQL that is not this "
                "stack's (see `ss -ltnp`): stop it, e.g. `pg_ctlcluster 15 main stop`, and retry."
            )
        self._init_cluster()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._give_to_postgres(self.socket_dir)
        argv = as_postgres_user(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data_dir),
                "-c",
                f"listen_addresses={self.addresses.host}",
                "-c",
                f"port={self.addresses.postgres_port}",
                "-c",
                f"unix_socket_directories={self.socket_dir}",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=256MB",
            ]
        )
        return proc.spawn(self.layout, self.name, argv)

    def stop(self) -> bool:
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave.
        return proc.stop(self.layout, self.name, sig=signal.SIGINT)

    def _init_cluster(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._give_to_postgres(self.data_dir)
        pwfile = self.layout.run / "pgpass.init"
        pwfile.write_text(DB_PASSWORD + "\n")
        self._give_to_postgres(pwfile)
        try:
            proc.run(
                as_postgres_user(
                    [
                        str(PG_BIN / "initdb"),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        DB_USER,
                        f"--pwfile={pwfile}",
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    @staticmethod
    def _give_to_postgres(path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def prepare(self) -> None:
        for database in DATABASES:
            exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
            if exists.strip() != "1":
                self._psql(f'CREATE DATABASE "{database}"')

    def _psql(self, sql: str) -> str:
        result = proc.run(
            [str(PG_BIN / "psql"), *self._connection(), "-d", "postgres", "-tAc", sql],
            "psql",
            env={**os.environ, "PGPASSWORD": DB_PASSWORD},
        )
        return result.stdout
