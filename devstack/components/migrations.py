"""Alembic migrations of the application database, applied once PostgreSQL is up."""

from __future__ import annotations

import os

from devstack import proc
from devstack.component import Step


class Migrations(Step):
    name = "migrations"

    @property
    def address(self) -> str:
        return "alembic upgrade head"

    def _alembic(self, *args: str) -> str:
        env = {**os.environ, "AUTOLOADER_DATABASE_URL": self.addresses.database_url}
        result = proc.run(
            [str(self.layout.venv_bin / "alembic"), *args],
            f"alembic {args[0]}",
            env=env,
            cwd=str(self.layout.root),
        )
        return result.stdout

    def healthy(self) -> bool:
        heads = {line.split()[0] for line in self._alembic("heads").splitlines() if line}
        current = {line.split()[0] for line in self._alembic("current").splitlines() if line}
        return heads == current

    def ensure_up(self) -> bool:
        if self.healthy():
            return False
        self._alembic("upgrade", "head")
        return True
