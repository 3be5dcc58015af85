"""Fixtures for the cross-package and end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def hello_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The third-party `sambung-hello` distribution, really installed into a folder of its own.

    A daemon started with this folder on PYTHONPATH finds the plugin through its entry point
    alone: nothing in core or in the repo's plugins names it.
    """
    target = tmp_path_factory.mktemp("hello-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(FIXTURES / "sambung-hello"),
        ],
        check=True,
    )
    return target
