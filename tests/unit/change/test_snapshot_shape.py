"""A snapshot is judged whole before anything on the host changes (issue 23, item 7): one that passes ``check()``
never fails a rollback's comparison or a strategy switch afterwards with Python's own error, and nested or
malformed JSON is hostprep's refusal naming the host and the field."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostprep.change import snapshots, switch

from hostprep.change import snapshot_store
from hostprep.hostdata import loads
from hostprep.host.journal import parse_runs
from hostprep.change.plan import make_plan
from tests.unit.fuzz import FUZZ
from tests.unit.change.test_leftovers import LEFT, RUNNING, with_containers
from tests.unit.change.test_snapshots import LAB, facts_of

SID = "20261201T120000Z-abcd"


def stored(facts: Any, strategy: str) -> dict[str, Any]:
    """A snapshot as a host or the controller's disk gives it back: through JSON."""
    return json.loads(json.dumps(snapshots.take(facts, make_plan(facts, LAB, strategy), SID)))


SNAPS = {"group-add": stored(with_containers(LEFT, RUNNING), "group-add"),
         "dockerfile": stored(facts_of("lab1_pristine"), "dockerfile"),
         "chmod": stored(facts_of("lab1_pristine"), "chmod")}
RECORDED = dataclasses.replace(facts_of("lab1_audit_groupadd"), record={"strategy": "group-add", "snapshot_id": SID})


def used_after_the_restore(snap: dict[str, Any]) -> None:
    """What a rollback does with the snapshot once its restore ran (judging the host), and what a switch does
    with it as its base: all of it must work for any snapshot ``check()`` passed."""
    snapshots.restore_plan(snap)
    want = snapshots.reachable(snap, snap["facts"])
    snapshots.differences(want, snapshots.fingerprint(snap["facts"]))
    snapshots.kept_dirs(snap)
    bool(snap["facts"].get("deep", True)), snap["facts"].get("docker_url")
    back = switch.step_back(snap)
    if isinstance(back, dict):
        switch.plan(RECORDED, LAB, "chmod", back)


def changed(snap: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(snap)
    here = out
    for key in path[:-1]:
        here = here[key]
    if value is KeyError:
        del here[path[-1]]
    else:
        here[path[-1]] = value
    return out


# --- the inputs the fuzzers found, each first a failing test -----------------------------------------

@pytest.mark.parametrize("path, value, field", [
    (("facts", "worker"), KeyError, "facts.worker"),
    (("facts", "worker"), [], "facts.worker"),
    (("facts", "worker", "docker_ps_rc"), KeyError, "facts.worker"),
    (("facts", "socket", "mode"), "660", "facts.socket"),
    (("facts", "socket"), KeyError, "facts.socket"),
    (("facts", "record"), KeyError, "facts.record"),
    (("facts", "docker_gid"), KeyError, "facts.docker_gid"),
    (("facts", "files"), [], "facts.files"),
    (("facts", "bind_dirs"), [{"exists": True}], "facts.bind_dirs"),
    (("facts", "bind_dirs"), 5, "facts.bind_dirs"),
    (("facts", "containers"), [{"name": "x", "service": "airflow-worker"}], "facts.containers"),
    (("facts", "containers"), [{"mounts": [5], "published": [], "docker_host": None, "running": True}],
     "facts.containers"),
    (("facts", "deep"), "yes", "facts.deep"),
])
def test_a_snapshot_whose_facts_cannot_judge_a_rollback_is_refused_before_the_restore(
        path: tuple[str, ...], value: Any, field: str) -> None:
    snap = changed(SNAPS["group-add"], path, value)
    with pytest.raises(snapshots.SnapshotRefused, match=f"lab1: snapshot refused: .*{field}"):
        snapshots.check(snap, "lab1", LAB)


def test_a_base_whose_facts_are_broken_refuses_the_switch_snapshot_that_carries_it() -> None:
    snap = {**SNAPS["chmod"], "base": changed(SNAPS["group-add"], ("facts", "worker"), KeyError)}
    with pytest.raises(snapshots.SnapshotRefused, match="lab1: snapshot refused: its base: facts.worker"):
        snapshots.check(snap, "lab1", LAB)


@pytest.mark.parametrize("name", sorted(SNAPS))
def test_every_snapshot_hostprep_takes_passes_and_serves_a_rollback_and_a_switch(name: str) -> None:
    used_after_the_restore(snapshots.check(SNAPS[name], "lab1", LAB))


def test_deeply_nested_json_in_the_controllers_store_is_skipped_not_a_recursion_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path))
    snapshot_store.save_local(snapshots.check(SNAPS["chmod"], "lab1"))
    folder = tmp_path / "hosts" / "lab1" / "snapshots"
    (folder / "20261201T120001Z-dead.json").write_text("[" * 100000)
    (folder / "20261201T120002Z-dead.json").write_text('{"id": ' + "[" * 5000 + "]" * 5000 + "}")
    assert [s["id"] for s in snapshot_store.list_local("lab1")] == [SID]


def test_nested_json_is_a_value_error_naming_what_was_read() -> None:
    with pytest.raises(ValueError, match="snapshot: nested deeper than"):
        loads('{"facts": ' + "[" * 1000 + "]" * 1000 + "}", "snapshot")


def test_a_journal_exit_code_that_is_not_ascii_digits_is_no_exit_code() -> None:
    """``"²".isdigit()`` is True and ``int("²")`` a ValueError: the journal parser raised on it."""
    runs = parse_runs("run 20261202T021500Z-3f9a1c mode=apply exit=\u00b2 alive=0\n> action 1 compose-up w\n")
    assert runs[0].exit_code is None and runs[0].state == "died" and runs[0].mid_change


def test_a_journal_line_is_split_at_newlines_only() -> None:
    """A separator ``splitlines`` honours (``\\x1c``, ``\\u2028``) cannot open a forged run in the journal."""
    text = "run 20261202T021500Z-3f9a1c mode=apply exit=0 alive=0 x\x1crun 20261202T021600Z-3f9a1d mode=apply exit=\n"
    assert [r.id for r in parse_runs(text)] == ["20261202T021500Z-3f9a1c"]
    assert [r.id for r in parse_runs("run 20261202T021500Z-3f9a1c mode=apply exit=0 alive=0\u2028"
                                     "run 20261202T021600Z-3f9a1d\n")] == ["20261202T021500Z-3f9a1c"]


def test_a_run_that_ended_by_a_signal_is_reported_died_by_it_and_mid_change() -> None:
    run = parse_runs("run 20261202T021500Z-3f9a1c mode=apply exit=143 alive=1\n> action 3 compose-up w\n")[0]
    assert (run.state, run.mid_change) == ("died (SIGTERM)", True)


# --- hypothesis: any change anywhere in a real snapshot -----------------------------------------------

_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2, 2 ** 33), st.floats(allow_nan=True),
                    st.text(max_size=10))
_JSONISH = st.recursive(_SCALAR, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), kids, max_size=3)),
                        max_leaves=12)
_VALUE = st.one_of(st.just(KeyError), _JSONISH,
                   st.integers(1, 60).map(lambda n: json.loads("[" * n + "]" * n)))


@st.composite
def _mutation(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Any, ...], Any]:
    snap = SNAPS[draw(st.sampled_from(sorted(SNAPS)))]
    path: list[Any] = []
    here: Any = snap
    while True:
        keys = list(here) if isinstance(here, dict) else list(range(len(here))) if isinstance(here, list) else []
        if not keys or (path and draw(st.booleans())):
            break
        key = draw(st.sampled_from(keys))
        path.append(key)
        here = here[key]
    return snap, tuple(path), draw(_VALUE)


@FUZZ
@given(_mutation())
def test_a_changed_snapshot_is_refused_or_serves_every_later_step(case: tuple[dict[str, Any], tuple[Any, ...], Any]) -> None:
    snap, path, value = case
    if not path:
        return
    broken = changed(snap, path, value) if not (value is KeyError and isinstance(path[-1], int)) else snap
    try:
        checked = snapshots.check(broken, "lab1", LAB)
    except snapshots.SnapshotRefused as exc:
        assert str(exc).startswith("lab1: snapshot refused: ")
        return
    used_after_the_restore(checked)


@FUZZ
@given(st.integers(1, 400), st.sampled_from(["[", "{\"a\":"]), st.sampled_from(sorted(SNAPS)), st.sampled_from(
    ["facts", "socket", "files", "dirs", "added", "record", "image", "services"]))
def test_nesting_anywhere_in_a_snapshot_is_refused_as_hostprep_refuses_it(depth: int, opener: str, name: str,
                                                                          key: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = json.dumps(SNAPS[name]).replace(f'"{key}": ', f'"{key}": ' + opener * depth + "1" + closer * depth + ', "x": ', 1)
    try:
        snap = loads(text, "snapshot")
    except ValueError as exc:
        assert "nested deeper" in str(exc) or "Expecting" in str(exc) or "Extra" in str(exc)
        return
    try:
        used_after_the_restore(snapshots.check(snap, "lab1", LAB))
    except snapshots.SnapshotRefused:
        pass
