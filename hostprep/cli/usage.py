"""The command line's own words: which global options hostprep keeps, exit codes, and usage errors.

Pure text, no Invoke: ``hostprep.cli.program`` feeds it what Invoke's parser refused and prints the answer.

>>> usage_error("--chek", ["--check", "--host"], ["provision"], task="provision")
'provision has no option --chek; did you mean --check? (`hostprep provision --help` lists them)'
"""

from __future__ import annotations

import ast
import difflib
import re
from typing import Iterable, Sequence

# Invoke's core options that hostprep keeps, with help that says what they do here.
CORE_HELP = {
    "complete": "print tab-completion candidates for the rest of the command line (used by the scripts below)",
    "help": "show this help, or a task's options (`hostprep TASK --help`), and exit",
    "list": "list the tasks (optionally only those of a group: --list audit) and exit",
    "print-completion-script": "print the tab-completion script for bash, zsh or fish "
                               "(bash: `source <(hostprep --print-completion-script bash)`)",
    "version": "show hostprep's version and exit",
}

# Invoke's core options hostprep dropped: they steer Invoke's run()/sudo(), which hostprep's tasks never call.
INVOKE_ONLY = frozenset({
    "-R", "--dry", "-e", "--echo", "-p", "--pty", "--hide", "-w", "--warn-only", "--prompt-for-sudo-password",
    "-T", "--command-timeout", "--write-pyc", "-f", "--config", "-d", "--debug", "-D", "--list-depth",
    "-F", "--list-format", "-c", "--collection", "-r", "--search-root", "--no-dedupe",
    "--dry-run", "--noop",   # other tools' dry runs: pointed to --check as well
})

EXIT_CODES = (
    ("0", "done: every host ok (audit: no drift)"),
    ("1", "audit tasks: bad input or command line, nothing was audited; any task: an unexpected error "
          "(a traceback) or Ctrl-C"),
    ("2", "a host failed or was unreachable, or the input or command line was refused (nothing was "
          "changed); audit: drift found"),
    ("3", "audit: a host could not be audited (unreachable or error); wins over 2"),
)

_UNKNOWN = re.compile(r"No idea what (.+) is!")
_NO_VALUE = re.compile(r"Flag <Argument: ([\w-]+)[^>]*> needed value and was not given one!")


def unknown_token(message: str) -> str | None:
    """The word Invoke's parser did not know, from its message (``No idea what '--chek' is!``)."""
    m = _UNKNOWN.fullmatch(message)
    if not m:
        return None
    try:
        token = ast.literal_eval(m.group(1))
    except (ValueError, SyntaxError):
        return None
    return token if isinstance(token, str) else None


def flag_without_value(message: str) -> str | None:
    """The option that needed a value and got none (``--host``), from Invoke's message."""
    m = _NO_VALUE.fullmatch(message)
    return "--" + m.group(1).replace("_", "-") if m else None


def nearest(word: str, choices: Iterable[str]) -> str | None:
    """The closest choice to a mistyped word, if one is close enough (difflib's ratio >= 0.6, leading
    dashes left out: they would make every option look alike)."""
    bare = {c.lstrip("-"): c for c in sorted(set(choices), reverse=True)}
    found = difflib.get_close_matches(word.lstrip("-"), sorted(bare), n=1, cutoff=0.6)
    return bare[found[0]] if found else None


def invoke_only(token: str) -> str:
    """Why an Invoke core option is refused, and where the dry run really is."""
    what = "not a hostprep option" if token in ("--dry-run", "--noop") else \
        "an Invoke option hostprep does not take (its tasks run nothing through Invoke)"
    return (f"{token} is {what}; a dry run is --check: `hostprep provision --check ...` shows the plan as a diff and changes nothing")


def usage_error(token: str, flags: Sequence[str], tasks: Sequence[str], *, task: str | None = None,
                task_flags: Sequence[str] = ()) -> str:
    """One line for an unknown option or task name, with the nearest valid one.

    ``flags`` are the options valid where the word stood (a task's, or the global ones before any task);
    ``task_flags`` are every task's options, to catch a task option given before the task's name.
    """
    if token in INVOKE_ONLY:
        return invoke_only(token)
    if not token.startswith("-"):
        guess = nearest(token, tasks)
        return f"no task {token!r}" + (f"; did you mean {guess}?" if guess else "") + \
            " (`hostprep --list` shows the tasks)"
    longs = [f for f in flags if f.startswith("--")] if token.startswith("--") else list(flags)
    if task:
        guess = nearest(token, longs)
        return f"{task} has no option {token}" + (f"; did you mean {guess}?" if guess else "") + \
            f" (`hostprep {task} --help` lists them)"
    if token in task_flags:
        return f"{token} is a task's option: put it after the task's name (`hostprep TASK {token} ...`)"
    guess = nearest(token, longs) or nearest(token, [f for f in task_flags if f.startswith("--")])
    where = " after the task's name" if guess and guess not in flags else ""
    return f"unknown option {token}" + (f"; did you mean {guess}{where}?" if guess else "") + \
        " (`hostprep --help` lists the global options, `hostprep TASK --help` a task's)"


def exit_code(argv: Sequence[str], tasks: Iterable[str], audit_tasks: Iterable[str]) -> int:
    """A refused command line exits 2 (input refused, nothing changed), but 1 for the audit's tasks,
    where 2 means drift (a cron job must not read a typo as drift)."""
    names, audit = set(tasks), set(audit_tasks)
    first = next((a for a in argv if a in names), None)
    return 1 if first in audit else 2
