"""Node packages for the tests that run real JavaScript clients, installed with npm into a
git-ignored folder once and kept between runs (reinstalled only when a pinned version is
missing)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest


def npm_installed(directory: Path, packages: Mapping[str, str]) -> bool:
    """Whether ``directory/node_modules`` holds each package at its pinned version."""
    for name, version in packages.items():
        found = directory / "node_modules" / name / "package.json"
        if not found.exists() or json.loads(found.read_text())["version"] != version:
            return False
    return True


def install_npm_packages(directory: Path, name: str, packages: Mapping[str, str],
                         needed_by: str) -> Path:
    """``packages`` (name -> exact version) installed in ``directory`` (an ES-module package
    called ``name``); fails the test with npm's output when it cannot."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.fail(f"{needed_by}: Node 20 and npm are needed (node and npm on PATH)")
    directory.mkdir(exist_ok=True)
    manifest = {"name": name, "private": True, "type": "module",
                "dependencies": dict(packages)}
    (directory / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if not npm_installed(directory, packages):
        done = subprocess.run(
            [npm, "install", "--prefix", str(directory), "--no-audit", "--no-fund",
             "--no-package-lock", "--loglevel=error"],
            capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0 or not npm_installed(directory, packages):
            pytest.fail(f"npm could not install {dict(packages)} into {directory} "
                        f"(exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return directory
