"""Start-up imports only what the command line uses: `--version` nothing but hostprep's version, `--help`
Invoke and the tasks' options, and only a task that runs imports the library (paramiko, Fabric, YAML).

Read from ``sys.modules`` when a fresh interpreter exits (what was imported, never how long it took;
``python -X importtime`` does not list what ``importlib.import_module`` imports, hostprep.cli.deferred's way).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("paramiko", "fabric", "yaml", "unittest", "cryptography", "nacl")
LIBRARY = ("hostprep.ssh", "hostprep.cli.commands", "hostprep.cli.audit_cmd", "hostprep.fleet.fanout", "hostprep.inventory.formats")


# `python -m hostprep ARGV` (or -c CODE), then the names in sys.modules at exit, on stderr's last line
RUN = ("import atexit, json, runpy, sys\n"
       "atexit.register(lambda: sys.__stderr__.write('\\n' + json.dumps(sorted(sys.modules))))\n"
       "if sys.argv[1] == '-c':\n    exec(sys.argv[2])\n"
       "else:\n    sys.argv = ['hostprep', *sys.argv[1:]]\n    runpy.run_module('hostprep', run_name='__main__')\n")


def imported(*argv: str) -> set[str]:
    """Every module a fresh interpreter had imported when `python -m hostprep ARGV` (or -c CODE) ended."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", RUN, *argv], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    names = set(json.loads(proc.stderr.rsplit("\n", 1)[1]))
    return names | {n.split(".")[0] for n in names}


def test_importing_the_entry_point_imports_no_ssh_no_yaml_no_unittest_and_no_invoke() -> None:
    names = imported("-c", "import hostprep.cli.program")
    assert "hostprep.cli.program" in names
    assert sorted(names & {*HEAVY, "invoke", *LIBRARY}) == []


def test_hostprep_version_imports_nothing_but_the_version() -> None:
    names = imported("--version")
    assert "hostprep.cli.program" in names
    assert sorted(names & {*HEAVY, "invoke", "hostprep.cli.app", "hostprep.cli.tasks", *LIBRARY}) == []


def test_help_and_a_tasks_help_import_neither_ssh_nor_the_library() -> None:
    """Invoke itself imports YAML and unittest.mock (invoke/context.py, for MockContext): not cut here."""
    for argv in (["--help"], ["audit", "--help"], ["provision", "--help"]):
        names = imported(*argv)
        assert "hostprep.cli.tasks" in names, argv
        assert sorted(names & {"paramiko", "fabric", "cryptography", "nacl", "hostprep.strategies", *LIBRARY}) == [], argv


def test_a_task_that_runs_imports_the_library_when_its_body_needs_it() -> None:
    names = imported("audit", "--inventory", "/nonexistent/hostprep-inventory.yml")
    assert {"hostprep.cli.audit_cmd", "hostprep.fleet.fanout", "paramiko", "yaml"} <= names
    assert "hostprep.change.provision" not in names   # only `audit --fix` needs it
