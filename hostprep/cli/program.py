"""hostprep's command line: the operator's tasks, as `hostprep TASK` and (in a clone) `invoke TASK`.

The entry point of the `hostprep` command and of `python -m hostprep`. Start-up is kept to what a
command line uses: `--version` is answered here with nothing else imported; any other command line
imports the Invoke program (``hostprep.cli.app``) and the tasks' options (``hostprep.cli.tasks``); a
task imports the library (paramiko, Fabric, the inventory's YAML) only when its body runs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from hostprep import __version__
from hostprep.cli.deferred import Deferred

if TYPE_CHECKING:
    from hostprep.cli import app
else:
    app = Deferred("hostprep.cli.app")

VERSION_ONLY = (["--version"], ["-V"])   # Invoke's own version flags, alone on the command line


def new_program() -> app.HostprepProgram:
    """The `hostprep` command's Invoke program, over a fresh collection of the operator's tasks."""
    return app.new_program()


def version_line() -> str:
    """What `hostprep --version` prints (Invoke's ``Program.print_version`` says the same)."""
    return f"hostprep {__version__}"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `hostprep` console command (and `python -m hostprep`)."""
    argv = sys.argv if argv is None else argv
    if argv[1:] in VERSION_ONLY:
        print(version_line())
        return
    new_program().run(argv)
