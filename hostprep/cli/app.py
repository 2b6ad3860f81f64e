"""hostprep's Invoke program: only hostprep's own global options, refusals that point the way, help with
the exit codes. Imported when a command line needs parsing (``hostprep.cli.program`` answers --version
without it): Invoke itself imports YAML and ``unittest.mock`` (its ``MockContext``), which no task uses.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from invoke import Argument, Exit, ParseError, Program
from invoke.completion.complete import complete, print_completion_script

from hostprep import __version__
from hostprep.cli import usage
from hostprep.redact import for_terminal
from hostprep.cli.tasks import collection


class HostprepProgram(Program):
    """Invoke's Program with hostprep's own global options only; a refused command line is one line
    naming the nearest valid option or task, and exits 2 (1 for the audit's tasks: 2 is drift there)."""

    def core_args(self) -> list[Argument]:
        kept = [a for a in super().core_args() if a.name in usage.CORE_HELP]
        for a in kept:
            a.help = usage.CORE_HELP[str(a.name)]
        return kept

    @contextmanager
    def _refusals(self) -> Iterator[None]:
        """Invoke's ParseError (and a value its int() refused) become hostprep's one-line usage error."""
        try:
            yield
        except ParseError as exc:
            raise self._usage_exit(self._explain(exc)) from None
        except ValueError as exc:   # e.g. --timeout abc: Invoke casts while parsing
            raise self._usage_exit(f"bad option value: {exc}") from None

    def _usage_exit(self, message: str) -> Exit:
        names = self.namespace.task_names if self.namespace is not None else {}
        every = [n for name, aliases in names.items() for n in (name, *aliases)]
        audit = [n for name, aliases in names.items() if name.startswith("audit.") for n in (name, *aliases)]
        return Exit(for_terminal(f"hostprep: error: {message}"), code=usage.exit_code(self.argv, every, audit))

    def _explain(self, exc: ParseError) -> str:
        token, message = usage.unknown_token(str(exc)), str(exc)
        missing = usage.flag_without_value(message)
        if missing:
            return f"{missing} needs a value"
        if token is None:
            return message
        contexts = self.namespace.to_contexts() if self.namespace is not None else []
        task_flags = [f for ctx in contexts for f in ctx.flag_names()]
        tasks = [str(n) for ctx in contexts for n in (ctx.name, *ctx.aliases)]
        core = list(self.initial_context.flag_names())
        ctx = exc.context if exc.context is not None and exc.context.name else None
        flags = [*ctx.flag_names(), *core] if ctx is not None else core
        return usage.usage_error(token, flags, tasks, task=ctx.name if ctx else None, task_flags=task_flags)

    def parse_core(self, argv: list[str] | None) -> None:
        with self._refusals():
            self.normalize_argv(argv)
            self.parse_core_args()
            if self.args.version.value:
                self.print_version()
                raise Exit
            if self.args["print-completion-script"].value:
                print_completion_script(shell=self.args["print-completion-script"].value, names=self.binary_names)
                raise Exit

    def parse_tasks(self) -> None:
        with self._refusals():
            super().parse_tasks()

    def parse_cleanup(self) -> None:
        """Invoke's, without its list-format/-depth options: --help, --help TASK, --list [GROUP], --complete."""
        wanted = self.args.help.value
        if wanted is True:
            self.print_help()
            raise Exit
        if wanted:
            if wanted not in self.parser.contexts:
                raise self._usage_exit(self._explain(ParseError(f"No idea what {wanted!r} is!")))
            self.print_task_help(wanted)
            raise Exit
        root = self.args.list.value
        if root:
            if isinstance(root, str):
                if root not in self.collection.collections:
                    groups = ", ".join(sorted(self.collection.collections))
                    raise self._usage_exit(f"no task group {root!r} (groups: {groups})")
                self.list_root, self.scoped_collection = root, self.collection.collections[root]
            self.list_tasks()
            raise Exit
        if self.args.complete.value:
            complete(names=self.binary_names, core=self.core, initial_context=self.initial_context,
                     collection=self.collection, parser=self._make_parser())
        if not self.tasks and not self.collection.default:
            self.no_tasks_given()

    def update_config(self, merge: bool = True) -> None:
        """No run()/sudo() overrides and no runtime config file: hostprep's tasks read neither."""
        if merge:
            self.config.merge()

    def print_help(self) -> None:
        print(f"Usage: {self.binary} [--core-opts] <task> [--task-opts] ...\n\nCore options:\n")
        self.print_columns(self.initial_context.help_tuples())
        self.list_tasks()
        print("Exit codes:\n")
        self.print_columns(usage.EXIT_CODES)
        print(f"`{self.binary} TASK --help` shows a task's options. A dry run is --check "
              f"(`{self.binary} provision --check` shows the plan as a diff and changes nothing).")


def new_program() -> HostprepProgram:
    """The `hostprep` command's program, over a fresh collection of the operator's tasks."""
    return HostprepProgram(namespace=collection(), version=__version__, name="hostprep", binary="hostprep",
                           binary_names=["hostprep"])
