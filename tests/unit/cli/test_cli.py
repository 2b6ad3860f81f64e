"""The `hostprep` command line: only hostprep's own options, refusals that point the way, exit codes in
--help, and tab completion that really runs in bash, zsh and fish.

Parsing runs in-process through the real Program (``cli.new_program().run(argv)``); the completion
scripts are sourced by the real shells, which call a `hostprep` on PATH that runs this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostprep.cli import program as cli, usage

REPO = Path(__file__).resolve().parents[3]
DROPPED = ["--dry", "-R", "--echo", "-e", "--pty", "-p", "--hide", "--warn-only", "-w", "--prompt-for-sudo-password",
           "--command-timeout", "-T", "--write-pyc", "--config", "--list-depth", "--list-format", "--debug",
           "--collection", "--search-root", "--no-dedupe"]
KEPT = ["--complete", "--print-completion-script", "--help", "--list", "--version"]
# The Invoke options and their value, if they took one; the task's inventory does not exist, so a task that ran
# anyway would complain about it.
INVOKE_ARGS = [["--dry"], ["-R"], ["--echo"], ["-e"], ["--pty"], ["-p"], ["--hide=both"], ["--hide", "both"],
               ["-w"], ["--warn-only"], ["--prompt-for-sudo-password"], ["-T", "5"], ["--command-timeout", "5"],
               ["--write-pyc"], ["--dry-run"]]
NO_INVENTORY = ["--inventory", "/nonexistent/hostprep-inventory.yml"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `hostprep ARGV`, parsed by the real Program."""
    with pytest.raises(SystemExit) as done:
        cli.new_program().run(["hostprep", *argv])
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def test_help_shows_only_hostpreps_own_global_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    options = out.split("Core options:")[1].split("Subcommands:")[0]
    assert code == 0
    assert [f for f in KEPT if f not in options] == []
    assert [f for f in DROPPED if f"{f}," in options or f"{f} " in options or f"{f}=" in options
            or f"{f}\n" in options] == []


def test_help_lists_every_exit_code_with_its_meaning(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--help")
    codes = out.split("Exit codes:")[1]
    for code, meaning in usage.EXIT_CODES:
        assert f"\n  {code}   {meaning.split()[0]}" in codes
    assert "drift" in codes and "could not be audited" in codes and "--check" in out


@pytest.mark.parametrize("flag", INVOKE_ARGS, ids=" ".join)
def test_an_invoke_option_before_the_task_is_refused_with_a_pointer_to_check(
        capsys: pytest.CaptureFixture[str], flag: list[str]) -> None:
    code, out, err = run(capsys, *flag, "provision", *NO_INVENTORY)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"hostprep: error: {flag[0].split('=')[0]} ")
    assert "--check" in err and "inventory" not in err


@pytest.mark.parametrize("flag", [f for f in INVOKE_ARGS if f[0].startswith("--")], ids=" ".join)
def test_an_invoke_option_after_the_task_is_refused_with_a_pointer_to_check(
        capsys: pytest.CaptureFixture[str], flag: list[str]) -> None:
    code, _, err = run(capsys, "rollback", *NO_INVENTORY, *flag)
    assert code == 2 and err.count("\n") == 1 and "--check" in err and "inventory" not in err


def test_a_refused_command_line_of_an_audit_task_exits_1_because_2_means_drift(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--dry", "audit", *NO_INVENTORY)[0] == 1
    assert run(capsys, "audit.run", "--deeep", *NO_INVENTORY)[0] == 1
    assert run(capsys, "audit.merge", "--report")[0] == 1


@pytest.mark.parametrize("argv,said", [
    (["provison", *NO_INVENTORY], "no task 'provison'; did you mean provision?"),
    (["audit.hist"], "no task 'audit.hist'; did you mean audit.history?"),
    (["--help", "rollbak"], "no task 'rollbak'; did you mean rollback?"),
    (["provision", *NO_INVENTORY, "--chek"], "provision has no option --chek; did you mean --check?"),
    (["provision", *NO_INVENTORY, "--stratgy=chmod"], "provision has no option --stratgy; did you mean --strategy?"),
    (["status", *NO_INVENTORY, "--jsn"], "status has no option --jsn; did you mean --json?"),
    (["--lst"], "unknown option --lst; did you mean --list?"),
    (["--check", "provision", *NO_INVENTORY], "--check is a task's option: put it after the task's name"),
    (["--stratgy", "chmod", "provision", *NO_INVENTORY], "unknown option --stratgy; did you mean --strategy after the task's name?"),
    (["provision", *NO_INVENTORY, "--host"], "--host needs a value"),
    (["--print-completion-script", "tcsh"], 'Completion for shell "tcsh" not supported'),
    (["--list", "aud"], "no task group 'aud' (groups: audit, certs, remote-tls)"),
])
def test_a_typo_is_refused_in_one_line_naming_the_nearest_valid_word(
        capsys: pytest.CaptureFixture[str], argv: list[str], said: str) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"hostprep: error: {said}") and err.count("\n") == 1


def test_an_option_far_from_every_valid_one_gets_no_guess(capsys: pytest.CaptureFixture[str]) -> None:
    _, _, err = run(capsys, "provision", "--zzzzzz", *NO_INVENTORY)
    assert "provision has no option --zzzzzz (`hostprep provision --help`" in err and "did you mean" not in err


def test_a_value_that_is_not_a_number_is_refused_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "facts", "--timeout", "abc", *NO_INVENTORY)
    assert code == 2 and "Traceback" not in err and "'abc'" in err and err.count("\n") == 1


def test_a_tasks_own_short_flag_still_wins_over_a_dropped_invoke_one(capsys: pytest.CaptureFixture[str]) -> None:
    """provision's -e is --serial and -c --check; dropping Invoke's -e/--echo must not take them away."""
    code, _, err = run(capsys, "provision", "-c", "-e", "1", *NO_INVENTORY)
    assert code == 2 and "inventory /nonexistent/hostprep-inventory.yml" in err


def test_a_task_still_runs_and_its_own_bad_input_keeps_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "facts", *NO_INVENTORY)[0] == 2
    assert run(capsys, "audit", *NO_INVENTORY)[0] == 1


def test_an_audit_every_that_no_schedule_can_keep_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "audit", "--every", "7m", *NO_INVENTORY)
    assert code == 1 and "--every '7m'" in err and "inventory" not in err


def test_list_and_version_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--list")
    assert code == 0 and "provision" in out and "audit.schedule" in out
    code, out, _ = run(capsys, "--list", "audit")
    assert code == 0 and ".schedule" in out and "provision" not in out
    assert run(capsys, "--version")[:2] == (0, f"hostprep {cli.__version__}\n")


def test_python_dash_m_hostprep_is_the_same_command() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "hostprep", "--dry", "provision"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2 and "--check" in done.stderr
    assert "Exit codes:" in subprocess.run([sys.executable, "-m", "hostprep", "--help"], capture_output=True,
                                           text=True, env=env, timeout=60).stdout


# ------------------------------------------------------------------ completion, in the real shells


@pytest.fixture(scope="module")
def shell_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PATH with a `hostprep` that runs this checkout (the scripts call `hostprep --complete`)."""
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "hostprep"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m hostprep "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def shell(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bash_completion_registers_hostprep_and_completes_tasks_and_options(shell_env: dict[str, str]) -> None:
    script = ("source <(hostprep --print-completion-script bash); complete -p hostprep; "
              "for w in prov 'provision --ch' 'audit.sch' --; do COMP_WORDS=($w); "
              "_complete_hostprep hostprep \"${COMP_WORDS[-1]}\"; echo \"[${COMPREPLY[*]}]\"; done")
    lines = shell(shell_env, "bash", "-c", script).split("\n")
    assert lines[0] == "complete -o default -F _complete_hostprep hostprep"
    assert lines[1:4] == ["[provision]", "[--check]", "[audit.schedule]"]
    assert set(lines[4].strip("[]").split()) == set(KEPT)


def test_zsh_completion_registers_hostprep_and_offers_its_tasks(shell_env: dict[str, str]) -> None:
    script = ("source <(hostprep --print-completion-script zsh); compctl -L hostprep; "
              "words=(hostprep provision --); _complete_hostprep; print -l -- $reply; print '=='; "
              "words=(hostprep pro); _complete_hostprep; print -l -- $reply")
    out = shell(shell_env, "zsh", "-f", "-c", script)
    registered, flags, tasks = out.split("\n", 1)[0], *out.split("\n", 1)[1].split("==\n")
    assert registered == "compctl -K _complete_hostprep + -f hostprep"
    assert "--check" in flags.split() and "--dry" not in flags.split()
    assert {"provision", "rollback", "audit.run"} <= set(tasks.split())


def test_fish_completion_completes_tasks_and_options(shell_env: dict[str, str]) -> None:
    script = ("hostprep --print-completion-script fish | source; complete -C'hostprep prov'; echo ==; "
              "complete -C'hostprep provision --ch'; echo ==; complete -C'hostprep --'")
    tasks, flags, core = shell(shell_env, "fish", "--no-config", "-c", script).split("==\n")
    assert tasks.split() == ["provision"] and flags.split() == ["--check"]
    assert set(core.split()) == set(KEPT)


def test_certs_rotate_refuses_starting_and_finishing_a_ca_switch_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "certs.rotate", *NO_INVENTORY, "--new-ca", "--finish-ca")
    assert code == 2 and "--new-ca and --finish-ca are two steps" in err


def test_certs_rotate_refuses_a_drain_timeout_that_is_not_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "certs.rotate", *NO_INVENTORY, "--new-ca", "--drain-timeout", "-5")
    assert code == 2 and "drain-timeout" in err
