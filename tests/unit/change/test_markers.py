"""Issue 23, items 3 and 7: a marker counts only when it is said whole, at the start of a line, under
the run's nonce; the parsers of the interpreter's log, the drain's lines and the DAG-run result raise
nothing but hostprep's own errors, whatever Compose, a worker or a task printed."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from hostprep.change import apply, dag_run, draining, in_worker, markers
from hostprep.change import provision as prov
from hostprep.change.apply import Outcome, parse_compose_seconds, parse_seconds
from tests.unit.fuzz import FUZZ

N = "0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba98"
SEPARATORS = ["\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\v", "\f", "\r"]
NAMES = ["done", "released", "snapshot", "failed", "restored", "restore-failed", "locked", "refused", "cause",
         "reconnected", "compose-seconds", "probe-seconds", "drain", "drain-stale", "siblings", "lock-broken",
         "lock-taken-over", "short-write", "incomplete", "stale", "probe"]


def log_of(text: str) -> Outcome:
    return Outcome(0, markers.own(text, N))


# --- the inputs, reproduced -----------------------------------------------------------------

def test_a_compose_seconds_marker_with_a_malformed_number_is_not_counted_not_a_crash() -> None:
    # compose output (unfenced) printing this made the controller raise ValueError after the apply ran
    assert parse_compose_seconds("@@hostprep:compose-seconds 1.2.3 4\n") == 0.0
    assert parse_seconds("@@hostprep:probe-seconds . 5\n", "probe") == 0.0
    assert parse_compose_seconds("@@hostprep:compose-seconds 10.5 12.0\n") == pytest.approx(1.5)


def test_a_reconnected_marker_that_is_not_a_small_number_counts_no_reconnect() -> None:
    assert Outcome(0, "@@hostprep:reconnected x").reconnects == 0
    assert Outcome(0, "@@hostprep:reconnected 99999").reconnects == 0
    assert Outcome(0, "@@hostprep:reconnected 2").reconnects == 2


def test_a_snapshot_marker_printed_by_compose_or_a_worker_is_not_this_runs_snapshot() -> None:
    # provision matched "@@hostprep:snapshot " as a substring anywhere in the log
    for forged in ("@@hostprep:snapshot 20261202T021459Z-ab12", f"@@hostprep:{OTHER}:snapshot x",
                   f"| @@hostprep:{N}:snapshot x", f"Recreated @@hostprep:{N}:snapshot x",
                   f"@@drain-{N} queues @@hostprep:snapshot x"):
        assert not log_of(f"@@hostprep:{N}:action 1 compose-up w\n{forged}\n").snapshot_stored, forged
    assert log_of(f"@@hostprep:{N}:snapshot 20261202T021459Z-ab12\n").snapshot_stored


def test_only_markers_under_the_nonce_decide_whether_a_run_succeeded() -> None:
    assert not log_of("@@hostprep:done\n").ok
    assert not log_of(f"@@hostprep:{OTHER}:done\n").ok
    assert log_of(f"x\n@@hostprep:{N}:done\n").ok


def test_a_separator_inside_a_line_never_opens_a_marker_line() -> None:
    for sep in SEPARATORS:
        out = log_of(f"| Container w{sep}@@hostprep:{N}:snapshot x{sep}@@hostprep:{N}:done\n")
        assert not out.ok and not out.snapshot_stored, repr(sep)


def test_the_apply_log_keeps_foreign_lines_for_the_error_but_fenced() -> None:
    out = Outcome(20, markers.own(f"@@hostprep:{N}:action 1 compose-up w\n| Error x\n@@hostprep:failed 9 y\n"
                                  f"@@hostprep:{N}:failed 1 compose-up\n", N))
    assert out.failed_step == "1 compose-up"
    assert "| @@hostprep:failed 9 y" in out.error()


def test_a_nonce_that_is_not_24_hex_digits_is_refused() -> None:
    for bad in ("", "abc", N.upper(), N + "0", "../" + N[3:]):
        with pytest.raises(ValueError):
            markers.own("x", bad)
        with pytest.raises(ValueError):
            markers.fenced("x", "@@t", bad)


def test_every_nonce_is_fresh_and_well_formed() -> None:
    seen = {markers.nonce() for _ in range(50)}
    assert len(seen) == 50 and all(markers.NONCE.fullmatch(n) for n in seen)


# --- the in-worker command: isolated, timed, no nonce on its command line ------------------------------

def test_the_in_worker_command_has_a_host_side_timeout_and_runs_from_root() -> None:
    argv = in_worker.argv("airflow-worker-1", 30, "print(1)", "a", "b")
    assert argv[:4] == ["timeout", "-k", "5", str(30 + in_worker.MARGIN)]
    assert argv[4:10] == ["docker", "exec", "-i", "-w", "/", "airflow-worker-1"]
    assert argv[-3:] == ["print(1)", "a", "b"]
    assert '"$py" -I' in in_worker.LAUNCHER and "env -i PATH=" in in_worker.LAUNCHER


def test_a_timed_out_in_worker_script_is_named_with_the_worker_and_the_timeout() -> None:
    why = in_worker.why_not("w1", 30, 124, "")
    assert why is not None and "w1" in why and f"{30 + in_worker.MARGIN} s" in why
    assert in_worker.why_not("w1", 30, 137, "") is not None
    assert in_worker.why_not("w1", 30, 0, "x") is None
    assert "only root can change" in (in_worker.why_not("w1", 30, 127, in_worker.NO_PYTHON) or "")


def test_the_drain_and_dag_run_scripts_read_their_nonce_from_stdin_not_argv() -> None:
    assert "sys.stdin.readline()" in dag_run.SCRIPT and "nonce" not in dag_run.SCRIPT.split("sys.argv")[1][:40]
    drain = (apply.interpreter().split("DRAIN_PY='", 1)[1]).split("'", 1)[0]
    assert "nonce = sys.stdin.readline().strip()" in drain
    assert '"$_nonce" "$@"' not in apply.interpreter()


# --- properties: nothing but hostprep's own errors, and nothing counts without the nonce ----------------

def _b64json(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


JSONS = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                     max_leaves=20)
WORDS = st.text(alphabet=st.sampled_from(list("abc@:/=+-_. 019") + SEPARATORS + ["\n", "\x00", "é"]), max_size=30)


@st.composite
def marker_lines(draw: st.DrawFn, nonce: str | None) -> str:
    """A line shaped like an interpreter marker, under ``nonce`` (None: no nonce), with a random body."""
    name = draw(st.sampled_from(NAMES))
    node = draw(st.sampled_from(["celery@w1", "celery@unknown", "celery@a;b", "x"]))
    kind = draw(st.sampled_from(["timeout", "drained", "running", "silent", "error", "resumed", "cancelled", "?"]))
    body = draw(st.one_of(WORDS, JSONS.map(_b64json).map(lambda b: f"{node} {kind} {b}"),
                          st.just(f"{node} {kind} ") .map(lambda s: s + "!!"), st.sampled_from(["", "1 2", "1.2.3 4",
                                                                                                "9" * 5000])))
    head = "@@hostprep:" + (f"{nonce}:" if nonce else "")
    return f"{head}{name} {body}" if body else f"{head}{name}"


def _everything(log: str) -> None:
    out = Outcome(20, log)
    out.ok, out.locked_by, out.refused, out.failed_step, out.restored, out.restore_failed, out.reconnects
    out.lock_notes, out.snapshot_stored, out.error()
    for code in (apply.LOCKED, apply.STALE, apply.REFUSED, apply.INCOMPLETE, apply.NOSPACE, apply.DIED,
                 apply.DRAIN_TIMEOUT, apply.DRAIN_FAILED, 1):
        Outcome(code, log).error()
    parse_compose_seconds(log), parse_seconds(log, "probe")
    draining.events(log), draining.notes(log), draining.preview(log), draining.failure(log), draining.waited(log)


@FUZZ
@given(st.lists(st.one_of(WORDS, marker_lines(None), marker_lines(OTHER)), max_size=12))
def test_lines_not_under_the_nonce_never_count_as_markers(lines: list[str]) -> None:
    log = markers.own("\n".join(lines), N)
    assert not any(ln.startswith(markers.PREFIX) for ln in log.split("\n"))
    out = Outcome(0, log)
    assert not out.ok and not out.snapshot_stored and out.failed_step is None and out.reconnects == 0
    assert draining.events(log) == [] and draining.notes(log) == [] and draining.waited(log) is None
    assert parse_compose_seconds(log) == 0.0
    _everything(log)


@FUZZ
@given(st.lists(st.one_of(WORDS, marker_lines(N), marker_lines(None)), max_size=12), st.sampled_from(SEPARATORS))
def test_the_apply_log_parsers_raise_nothing_whatever_the_markers_say(lines: list[str], sep: str) -> None:
    _everything(markers.own("\n".join(lines), N))
    _everything(markers.own(sep.join(lines), N))


@FUZZ
@given(st.lists(st.one_of(WORDS, marker_lines(N)), max_size=8))
def test_the_drain_parsers_raise_nothing_on_the_raw_log_either(lines: list[str]) -> None:
    _everything("\n".join(ln.replace(f"{N}:", "") for ln in lines))


@FUZZ
@given(st.one_of(JSONS, st.fixed_dictionaries({"state": JSONS, "tasks": JSONS, "logs": JSONS, "paused": JSONS,
                                                "timed_out": JSONS, "error": JSONS, "output": JSONS})),
       st.lists(WORDS, max_size=4), st.sampled_from([N, OTHER, None]))
def test_the_dag_run_result_never_raises_and_counts_only_under_the_nonce(data: object, noise: list[str],
                                                                         nonce: str | None) -> None:
    line = f"{dag_run.TAG}:{nonce} {json.dumps(data)}" if nonce else f"{dag_run.TAG} {json.dumps(data)}"
    result = dag_run.parse("\n".join([*noise, line, *noise]), N)
    dag_run.describe(result)
    if nonce != N:
        assert not result.ok
    if result.ok:
        assert isinstance(data, dict) and data.get("state") == "success" and not data.get("error")


@FUZZ
@given(st.text(max_size=300))
def test_the_dag_run_result_of_any_text_never_raises(text: str) -> None:
    dag_run.describe(dag_run.parse(text, N))
    dag_run.describe(dag_run.parse(f"{dag_run.TAG}:{N} " + text, N))


def test_nested_json_in_a_drain_line_is_skipped_not_a_recursion_error() -> None:
    deep = base64.b64encode(b"[" * 100000).decode()
    assert draining.events(f"@@hostprep:drain celery@w timeout {deep}") == []


# --- in_worker.sh, run with this machine's sh (what docker exec runs in the worker) ---------------------

def _launch(tmp_path: Path, script: str, path: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": str(tmp_path), **extra_env}
    return subprocess.run(["/bin/sh", "-c", in_worker.LAUNCHER, "sh", "20", script, "arg1"], cwd=tmp_path, env=env,
                          input=N + "\n", capture_output=True, text=True, timeout=60)


def test_the_launcher_runs_python_isolated_from_the_working_directory_and_the_environment(tmp_path: Path) -> None:
    planted = tmp_path / "json.py"
    planted.write_text(f"open({str(tmp_path / 'proof')!r}, 'w').write('ran')\nprint('@@hostprep:snapshot forged')\n")
    script = ("import json, os, sys\nprint(sys.stdin.readline().strip(), sys.argv[1:], os.getcwd() in sys.path,"
              " sys.flags.isolated, sorted(os.environ))")
    done = _launch(tmp_path, script, "/usr/local/bin:/usr/bin:/bin",
                   {"PYTHONPATH": str(tmp_path), "LD_PRELOAD": "/x.so", "AIRFLOW__CORE__X": "1", "PYTHONSTARTUP": "/y"})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "proof").exists() and "forged" not in done.stdout
    nonce, rest = done.stdout.split(" ", 1)
    assert nonce == N and rest.startswith("['arg1'] False 1 ")
    assert "AIRFLOW__CORE__X" in rest and "LD_PRELOAD" not in rest and "PYTHONPATH" not in rest
    assert N not in " ".join(["sh", "-c", in_worker.LAUNCHER, "20", script, "arg1"])


def test_the_launcher_never_runs_a_python3_from_a_folder_others_can_write(tmp_path: Path) -> None:
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").write_text(f"#!/bin/sh\necho planted > {tmp_path / 'proof'}\n")
    (shim / "python3").chmod(0o755)
    shim.chmod(0o777)   # as a folder the worker's tasks can write (their ~/.local/bin)
    done = _launch(tmp_path, "print('real')", f"{shim}:/usr/local/bin:/usr/bin:/bin", {})
    assert done.stdout.strip() == "real" and not (tmp_path / "proof").exists()
    alone = _launch(tmp_path, "print('real')", str(shim), {})
    assert alone.returncode == 127 and in_worker.NO_PYTHON in alone.stdout and not (tmp_path / "proof").exists()


def test_a_change_that_could_not_be_verified_says_the_host_is_changed_and_how_to_undo_it() -> None:

    report = prov._unverified(prov.HostReport("h1"), 3, "20261202T021459Z-ab12", "unreadable result")
    assert report.failed and report.changed == 3
    assert "changed, not verified" in (report.error or "") and "unreadable result" in (report.error or "")
    assert "hostprep rollback --host h1 --snapshot 20261202T021459Z-ab12" in (report.error or "")
