"""The `hostprep` command as a controller that is not a clone gets it: a wheel in a fresh venv.

Builds the wheel from a copy of the checkout (``python -m build``, as the README says), installs
it into a new virtualenv, and drives a lab host with that venv's ``hostprep`` from a directory
outside the clone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

from tests.integration.conftest import Pristine
from tests.lab import lab

IGNORE = shutil.ignore_patterns(".git", ".state", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
                                ".hypothesis", "inventories")


def _clean_env(home: Path) -> dict[str, str]:
    """An operator's shell: no PYTHONPATH or virtualenv of this checkout leaking in."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip")}


def _run(*args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=_clean_env(cwd))
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


def test_a_wheel_installed_hostprep_provisions_a_lab_host_from_outside_the_clone(
        pristine: Pristine, tmp_path: Path) -> None:
    h = pristine("lab1")
    src = tmp_path / "src"
    shutil.copytree(lab.REPO, src, ignore=IGNORE)
    _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp_path / "dist", src, cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("hostprep-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    _run(env_dir / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel, cwd=tmp_path)
    hostprep = env_dir / "bin" / "hostprep"
    elsewhere = tmp_path / "operator"
    elsewhere.mkdir()

    assert _run(hostprep, "--version", cwd=elsewhere).stdout.startswith("hostprep ")
    assert "--inventory" in _run(hostprep, "facts", "--help", cwd=elsewhere).stdout
    assert "complete" in _run(hostprep, "--print-completion-script", "bash", cwd=elsewhere).stdout
    located = _run(env_dir / "bin" / "python", "-c", "import hostprep; print(hostprep.__file__)", cwd=elsewhere)
    assert located.stdout.startswith(str(env_dir)), located.stdout   # the wheel's code, not this checkout's

    done = subprocess.run([str(hostprep), "provision", "--host", h.name, "-i", str(lab.INVENTORY)], cwd=elsewhere,
                          capture_output=True, text=True, timeout=600,
                          env=_clean_env(elsewhere) | {"HOSTPREP_STATE_DIR": str(tmp_path / "state")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"{h.name} : ok=" in done.stdout and "after  docker ps: ok" in done.stdout
