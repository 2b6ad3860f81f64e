"""The manual: it builds strictly, its generated reference is the code's, and every `hostprep` command it
(or the README) shows is accepted by hostprep's own command-line parser. Nothing runs and no host is contacted:
the parser stops before Invoke's executor."""

from __future__ import annotations

import importlib.util
import io
import re
import shlex
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import ModuleType

import pytest
from invoke import Exit, ParseError

from hostprep.cli.program import new_program

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"\s*(```|~~~)")
REDIRECTS = {">", ">>", "<", ">&", "&>", ">|", "<<", "<<<"}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shell_lines(markdown: str) -> list[tuple[int, str]]:
    """(line number, text) of every line inside fenced code blocks, backslash continuations joined."""
    out: list[tuple[int, str]] = []
    fenced, pending, start = False, "", 0
    for n, line in enumerate(markdown.split("\n"), 1):
        if FENCE.match(line):
            fenced, pending = not fenced, ""
            continue
        if not fenced:
            continue
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def hostprep_argv(line: str) -> list[list[str]]:
    """The argument lists of every `hostprep ...` (or `python3 -m hostprep ...`) command on a shell line:
    after a `$ ` prompt and VAR=value words, split at `&&`, `|`, `;`, `<(`..., cut at a redirection."""
    if not re.search(r"(^|[\s/(|;&])hostprep(\s|$)", line):
        return []   # not a hostprep command (YAML, a folder tree, another tool)
    lexer = shlex.shlex(line.strip().removeprefix("$ "), posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    segments: list[list[str]] = [[]]
    cut = False
    for tok in lexer:
        if tok in REDIRECTS:
            cut = True
        elif tok and all(c in "();<>|&" for c in tok):
            segments.append([])
            cut = False
        elif not cut:
            segments[-1].append(tok)
    found = []
    for words in segments:
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]
        if words and words[0].rsplit("/", 1)[-1] == "hostprep":
            found.append(words[1:])
        elif words[:3] in (["python3", "-m", "hostprep"], ["python", "-m", "hostprep"]):
            found.append(words[3:])
    return found


def refusal(argv: list[str]) -> str | None:
    """None when hostprep's own parser accepts ``argv``; else what it said. Parsing only: the program's
    steps up to its cleanup (help, --list), never its executor, so no task runs."""
    program, said = new_program(), io.StringIO()
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(said):
            program.create_config()
            program.parse_core(["hostprep", *argv])
            program.parse_collection()
            program.parse_tasks()
            program.parse_cleanup()
    except Exit as exc:
        return f"exit {exc.code}: {exc.message or said.getvalue()}".strip() if exc.code else None
    except ParseError as exc:
        return str(exc)
    return None


def documented_commands() -> list[tuple[str, list[str]]]:
    return [(f"{page.relative_to(ROOT)}:{n}", argv) for page in PAGES
            for n, line in shell_lines(page.read_text(encoding="utf-8")) for argv in hostprep_argv(line)]


# ------------------------------------------------------------------ the commands the manual shows


def test_the_manual_and_the_readme_show_commands_for_every_main_task() -> None:
    tasks = {argv[0] for _, argv in documented_commands() if argv}
    assert {"provision", "rollback", "facts", "audit", "audit.schedule", "status"} <= tasks, tasks


def test_every_hostprep_command_in_the_manual_and_the_readme_parses() -> None:
    refused = [(where, " ".join(argv), refusal(argv)) for where, argv in documented_commands()]
    assert [r for r in refused if r[2] is not None] == []


@pytest.mark.parametrize("line", [
    "hostprep provision --host web1 --dry-run",            # another tool's dry run
    "hostprep provision --host web1 --strategy group-add --chek",
    "hostprep audit --limit workers --report web1",        # audit.merge's option, not audit's
    "hostprep auditt --limit workers",
    "hostprep --dry provision --host web1",
    "hostprep rollback --host web1 --timeout soon",
])
def test_a_documented_command_with_a_stale_option_fails_the_check(line: str) -> None:
    page = f"Run this:\n\n```sh\n$ {line}   # a stale example\n```\n"
    ((n, text),) = shell_lines(page)
    (argv,) = hostprep_argv(text)
    assert n == 4 and refusal(argv) is not None


def test_commands_are_found_after_prompts_and_variables_across_continuations_and_pipes() -> None:
    page = ("```sh\nHOSTPREP_INVENTORY=x.yml hostprep facts \\\n  --host web1 --json | jq .\n"
            "python3 -m venv /v && /v/bin/hostprep --version > /dev/null\n"
            "source <(hostprep --print-completion-script bash)\n```\n"
            "hostprep outside a code block is prose\n")
    found = [argv for _, line in shell_lines(page) for argv in hostprep_argv(line)]
    assert found == [["facts", "--host", "web1", "--json"], ["--version"], ["--print-completion-script", "bash"]]


def test_a_command_the_parser_accepts_runs_nothing() -> None:
    assert refusal(["provision", "--host", "no-such-host", "-i", "/nonexistent.yml", "--check"]) is None
    assert refusal(["--help"]) is None and refusal(["provision", "--help"]) is None


# ------------------------------------------------------------------ the reference and the build


def test_the_generated_reference_is_what_the_code_gives_now() -> None:
    assert generator().stale() == [], "run `python3 docs/gen_reference.py`"


def test_the_generator_refuses_a_finding_or_var_the_manual_does_not_explain(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = generator()
    monkeypatch.delitem(gen.FINDINGS, "lock-stale")
    with pytest.raises(SystemExit, match="lock-stale"):
        gen.findings()
    monkeypatch.setitem(gen.VARS, "hostprep_gone", "a var the code no longer has")
    with pytest.raises(SystemExit, match="hostprep_gone"):
        gen.inventory_vars()


def test_the_reference_lists_every_task_rule_and_exit_code() -> None:
    gen = generator()
    options, findings, codes = gen.task_options(), gen.findings(), gen.exit_codes()
    assert "## hostprep audit.merge" in options and "| `-r, --report` |  | a shard's audit.json" in options
    assert "| `lock-stale` | critical |" in findings and "| `dag-privileged` | critical |" in findings
    assert "| `3` |" in codes


def test_the_manual_builds_with_mkdocs_strict(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "findings" / "index.html").exists()


def test_the_readme_is_the_first_five_minutes_and_keeps_the_quick_start() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.split("\n")) <= 200
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "bash .ci/demo" in quick and "bash .ci/run" in quick and "**`python3 -m pytest`**" in quick
    linked = set(re.findall(r"\]\((docs/[^)]+\.md)\)", text))
    assert linked and all((ROOT / p).exists() for p in linked)
