"""Every distribution builds as a wheel, and core plus one plugin installed from their wheels
into a fresh virtual environment find each other through the entry point alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UV = REPO / ".tools" / "bin" / "uv"
PACKAGES = ["sambung", *sorted(f"sambung-{p.name}" for p in (REPO / "plugins").iterdir())]


def uv() -> str:
    found = str(UV) if UV.exists() else shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (make check puts it in .tools/)")
    return found


def run(*command: str | Path, cwd: Path = REPO) -> str:
    # Nothing from this checkout's environment may leak into the fresh one.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheels_install_into_a_fresh_venv_and_the_plugin_is_found(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(uv(), "build", "--all-packages", "--wheel", "--out-dir", dist, "--quiet")
    built = sorted(p.name.split("-")[0].replace("_", "-") for p in dist.glob("*.whl"))
    assert built == sorted(PACKAGES)

    # Dependencies at exactly the versions uv.lock resolved; ours from the wheels just built,
    # by path, so no index is ever asked for a `sambung` distribution.
    requirements = tmp_path / "requirements.txt"
    run(
        uv(), "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes",
        "--package", "sambung", "--output-file", requirements, "--quiet",
    )  # fmt: skip
    venv = tmp_path / "venv"
    run(uv(), "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    wheels = [next(dist.glob("sambung-*.whl")), next(dist.glob("sambung_pawoon-*.whl"))]
    run(uv(), "pip", "install", "--quiet", "--python", python, "-r", requirements, *wheels)

    listed = run(venv / "bin" / "sambung", "plugins", cwd=tmp_path)
    first, *rest = listed.splitlines()
    assert first.startswith("pawoon ") and first.endswith(" (sambung-pawoon)"), listed
    assert rest == ["  connector pawoon: file-drop, poll, webhook"]
    where = run(python, "-c", "import sambung; print(sambung.__file__)", cwd=tmp_path)
    assert where.startswith(str(venv)), "sambung came from the checkout, not the wheel"
    # The console's templates and static files are package data: they ship in the wheel.
    console = "from importlib.resources import files; c = files('sambung.console'); print("
    console += "(c / 'templates' / 'base.html').is_file(), (c / 'static' / 'console.js').is_file())"
    assert run(python, "-c", console, cwd=tmp_path).strip() == "True True"
