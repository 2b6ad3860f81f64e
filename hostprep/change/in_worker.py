"""Python that hostprep runs inside the Airflow worker, isolated from what its tasks can change.

The worker's tasks run as the worker's user: they can write its working directory (/opt/airflow),
its home and any folder on the image's PATH that user owns. So hostprep's in-worker Python runs
through ``in_worker.sh`` (a root-owned ``python3`` from the image's PATH, ``-I``/``-P``, ``env -i``,
from ``/``), gets its nonce on stdin, and is ended by ``timeout`` on the host: a python that hangs
in the worker cannot hold up a run. See ``in_worker.sh``.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["LAUNCHER", "MARGIN", "NO_PYTHON", "argv", "timed_out", "why_not"]

LAUNCHER = resources.files(__package__).joinpath("in_worker.sh").read_text()
MARGIN = 60          # seconds the host's timeout allows past the script's own (python and Airflow starting)
NO_PYTHON = "@@in-worker no-python"


def argv(container: str, seconds: int, script: str, *args: str) -> list[str]:
    """The host-side command that runs ``script`` (Python source) with ``args`` in ``container``.

    >>> argv("w1", 30, "print(1)", "a")[:10]
    ['timeout', '-k', '5', '90', 'docker', 'exec', '-i', '-w', '/', 'w1']
    """
    return ["timeout", "-k", "5", str(seconds + MARGIN), "docker", "exec", "-i", "-w", "/", container,
            "/bin/sh", "-c", LAUNCHER, "sh", str(seconds + MARGIN // 2), script, *args]


def timed_out(exit_code: int) -> bool:
    """``timeout`` ended it (124; 137: it had to be killed)."""
    return exit_code in (124, 137)


def why_not(container: str, seconds: int, exit_code: int, output: str) -> str | None:
    """Why the in-worker script gave no answer (it timed out, no usable python3), or None.

    >>> why_not("airflow-worker-1", 30, 124, "")
    'python3 in the worker airflow-worker-1 did not finish within 90 s: ended by the timeout'
    """
    if timed_out(exit_code):
        return f"python3 in the worker {container} did not finish within {seconds + MARGIN} s: ended by the timeout"
    if exit_code == 127 and NO_PYTHON in output:
        return (f"no python3 on the PATH of the worker {container}'s image that only root can change "
                "(hostprep runs no interpreter its tasks could have planted)")
    return None
