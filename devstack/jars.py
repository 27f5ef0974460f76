"""Fetch a component's jars from Maven Central into the download cache, once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from devstack import proc
from devstack.layout import Layout

POMS = Path(__file__).resolve().parent / "maven"


def fetch(layout: Layout, pom: str, version_tag: str) -> Path:
    """Copy the runtime classpath of devstack/maven/POM.xml into the cache; return its folder.

    The folder is complete when its marker exists, so an interrupted download is redone.
    """
    dest = layout.jars(f"{pom}-{version_tag}")
    marker = dest / ".complete"
    if marker.exists():
        return dest
    if shutil.which("mvn") is None:
        _install_maven()
    if dest.exists():
        shutil.rmtree(dest)
    proc.run(
        [
            "mvn",
            "-B",
            "-q",
            f"-Dmaven.repo.local={layout.m2}",
            "-f",
            str(POMS / f"{pom}.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={dest}",
        ],
        f"downloading the {pom} jars from Maven Central",
    )
    marker.touch()
    return dest


def _install_maven() -> None:
    if os.geteuid() != 0:
        raise proc.StackError("Maven is missing: run `sudo apt-get install maven`, then retry.")
    proc.run(["apt-get", "update", "-q"], "apt-get update")
    proc.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "maven"],
        "apt-get install maven",
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
