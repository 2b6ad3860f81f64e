"""Snapshots record only what a plan touches; restoring replays them; fingerprints judge a rollback."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hostprep import __version__
from hostprep.host.facts import OVERRIDE_FILE, DirFacts, Facts, FileFacts
from hostprep.host.probe import parse_probe
from hostprep.change.plan import Action, make_plan
from hostprep.inventory.settings import HostSettings
from hostprep.change.snapshots import differences, fingerprint, kept_dirs, new_id, reachable, restore_actions, take

FIXTURES = Path(__file__).parents[1] / "fixtures"
LAB = HostSettings()
PROJ = "/opt/airflow"
SOCKET_BACK = [Action("chmod", ("/var/run/docker.sock", "660")), Action("chown", ("/var/run/docker.sock", "0", "998"))]


def facts_of(name: str) -> Facts:
    return parse_probe(name.split("_")[0], (FIXTURES / f"probe_{name}.txt").read_text(), LAB)


def snapshot(facts: Facts, strategy: str) -> dict:
    """A snapshot as the controller stores it: through JSON."""
    return json.loads(json.dumps(take(facts, make_plan(facts, LAB, strategy), "20261125T173000Z-3f9a")))


# --- take --------------------------------------------------------------------------------------------

def test_a_group_add_snapshot_records_the_env_file_and_the_override_that_did_not_exist() -> None:
    snap = snapshot(facts_of("lab1_pristine"), "group-add")
    assert snap["files"] == {
        f"{PROJ}/.env": {"existed": True, "content_b64": base64.b64encode(b"AIRFLOW_UID=50000\n").decode(),
                         "mode": 0o644, "uid": 0, "gid": 0},
        f"{PROJ}/{OVERRIDE_FILE}": {"existed": False},
    }
    assert (snap["dirs"], snap["image"], snap["recreated"]) == ({}, None, True)


def test_a_snapshot_names_the_run_and_what_it_is_about_to_do() -> None:
    snap = snapshot(facts_of("lab1_pristine"), "group-add")
    assert (snap["id"], snap["host"], snap["strategy"], snap["services"]) == \
        ("20261125T173000Z-3f9a", "lab1", "group-add", ["airflow-worker"])
    assert snap["hostprep_version"] == __version__
    assert snap["steps"] == [f"create {OVERRIDE_FILE}", "edit .env", "recreate airflow-worker"]
    assert snap["socket"] == {"path": "/var/run/docker.sock", "mode": 0o660, "uid": 0, "gid": 998}
    assert snap["record"] is None
    assert datetime.fromisoformat(snap["created"]).tzinfo is not None


def test_a_snapshot_keeps_facts_without_file_contents() -> None:
    snap = snapshot(facts_of("lab1_pristine"), "group-add")
    assert "content" not in snap["facts"]["files"][".env"]
    assert snap["facts"]["files"][".env"]["sha256"]


def test_a_dockerfile_snapshot_records_the_dockerfile_and_the_image_to_tag_back() -> None:
    facts = facts_of("lab2_pristine")
    snap = snapshot(facts, "dockerfile")
    assert sorted(snap["files"]) == [f"{PROJ}/.env", f"{PROJ}/Dockerfile", f"{PROJ}/{OVERRIDE_FILE}"]
    assert base64.b64decode(snap["files"][f"{PROJ}/Dockerfile"]["content_b64"]).decode() == \
        facts.files["Dockerfile"].content
    assert snap["image"] == {"ref": "hostprep-lab/airflow:latest",
                             "id": "sha256:cbffa3f923ddb9bf37c48960aedbb4510626272acdc7f6b6a73c31392f96bbe3"}


def test_a_chmod_snapshot_records_only_the_socket() -> None:
    snap = snapshot(facts_of("lab1_pristine"), "chmod")
    assert (snap["files"], snap["dirs"], snap["image"], snap["recreated"]) == ({}, {}, None, False)
    assert snap["socket"]["mode"] == 0o660


def test_a_snapshot_records_bind_dirs_it_creates_or_chowns_but_not_the_others() -> None:
    facts = dataclasses.replace(facts_of("lab1_pristine"), bind_dirs=(
        DirFacts("dags", True, 0, 0, 0o755), DirFacts("logs", False), DirFacts("plugins", True, 50000, 0, 0o755)))
    snap = snapshot(facts, "chmod")
    assert snap["dirs"] == {
        f"{PROJ}/dags": {"existed": True, "uid": 0, "gid": 0, "mode": 0o755},
        f"{PROJ}/logs": {"existed": False, "uid": None, "gid": None, "mode": None},
    }


def test_a_snapshot_of_a_plan_with_nothing_to_do_records_no_files() -> None:
    facts = dataclasses.replace(facts_of("lab1_pristine"),
                                socket=dataclasses.replace(facts_of("lab1_pristine").socket, mode=0o666))
    snap = snapshot(facts, "chmod")
    assert (snap["files"], snap["dirs"], snap["steps"], snap["recreated"]) == ({}, {}, [], False)


# --- restore_actions -----------------------------------------------------------------------------------

def test_restoring_a_group_add_snapshot_rewrites_env_deletes_the_override_and_recreates() -> None:
    actions, contents = restore_actions(snapshot(facts_of("lab1_pristine"), "group-add"))
    assert actions == SOCKET_BACK + [
        Action("write", (f"{PROJ}/.env", "0", "0", "644"), "AIRFLOW_UID=50000\n"),
        Action("delete", (f"{PROJ}/{OVERRIDE_FILE}",)),
        Action("compose-up", ("airflow-worker",)),
    ]
    assert contents == ["AIRFLOW_UID=50000\n"]


def test_restoring_a_dockerfile_snapshot_tags_the_old_image_back_before_recreating() -> None:
    facts = facts_of("lab2_pristine")
    actions, contents = restore_actions(snapshot(facts, "dockerfile"))
    assert [a.op for a in actions] == ["chmod", "chown", "write", "write", "delete", "tag", "compose-up"]
    assert actions[-2] == Action("tag", (facts.worker.image_id or "", "hostprep-lab/airflow:latest"))
    assert contents == ["AIRFLOW_UID=50000\n", facts.files["Dockerfile"].content]


def test_restoring_a_chmod_snapshot_only_puts_the_socket_back() -> None:
    assert restore_actions(snapshot(facts_of("lab1_pristine"), "chmod")) == (SOCKET_BACK, [])


def test_restoring_puts_dirs_back_chown_and_mode_and_keeps_the_created_ones() -> None:
    """A created bind folder is kept: the services mount it, and Docker would make it again as root."""
    facts = dataclasses.replace(facts_of("lab1_pristine"), bind_dirs=(
        DirFacts("dags", True, 0, 0, 0o750), DirFacts("logs", False)))
    snap = snapshot(facts, "chmod")
    actions, _ = restore_actions(snap)
    assert actions[2:] == [
        Action("chown", (f"{PROJ}/dags", "0", "0")), Action("chmod", (f"{PROJ}/dags", "750")),
        Action("compose-up", ("airflow-worker",)),
    ]
    assert kept_dirs(snap) == ["logs"]


def test_the_rollback_judges_a_kept_folder_as_it_is_and_everything_else_as_the_snapshot_was() -> None:
    facts = dataclasses.replace(facts_of("lab1_pristine"), bind_dirs=(
        DirFacts("dags", True, 0, 0, 0o750), DirFacts("logs", False)))
    snap = snapshot(facts, "chmod")
    after = dataclasses.replace(facts, bind_dirs=(DirFacts("dags", True, 0, 0, 0o750),
                                                  DirFacts("logs", True, 50000, 0, 0o755))).to_dict()
    assert differences(reachable(snap, after), fingerprint(after)) == []
    wrong = dataclasses.replace(facts, bind_dirs=(DirFacts("dags", True, 50000, 0, 0o750),
                                                  DirFacts("logs", True, 50000, 0, 0o755))).to_dict()
    assert [d.split(":")[0] for d in differences(reachable(snap, wrong), fingerprint(wrong))] == ["bind_dirs"]


def test_restoring_keeps_the_original_mode_and_owner_of_a_file() -> None:
    facts = dataclasses.replace(facts_of("lab1_pristine"), files={
        **facts_of("lab1_pristine").files, ".env": FileFacts(".env", True, 0o600, 50000, 0, "A=1\n")})
    actions, _ = restore_actions(snapshot(facts, "group-add"))
    assert Action("write", (f"{PROJ}/.env", "50000", "0", "600"), "A=1\n") in actions


def test_a_snapshot_without_socket_mode_does_not_touch_the_socket() -> None:
    snap = snapshot(facts_of("lab1_pristine"), "group-add")
    snap["socket"] = {"path": "/var/run/docker.sock", "mode": None, "uid": None, "gid": None}
    assert restore_actions(snap)[0][0].op == "write"


def test_restoring_non_ascii_utf8_content_gives_it_back_exactly() -> None:
    text = "# Zürich ☃ cluster\nAIRFLOW_UID=50000\n"
    facts = dataclasses.replace(facts_of("lab1_pristine"), files={
        **facts_of("lab1_pristine").files, ".env": FileFacts(".env", True, 0o644, 0, 0, text)})
    _actions, contents = restore_actions(snapshot(facts, "group-add"))
    assert contents == [text]


# --- fingerprint and differences -------------------------------------------------------------------------

def test_a_fingerprint_ignores_pids_and_container_restarts() -> None:
    before = fingerprint(facts_of("lab2_pristine").to_dict())
    assert fingerprint(facts_of("lab2_pristine_recaptured").to_dict()) == before


def test_a_fingerprint_survives_the_json_round_trip_of_a_stored_snapshot() -> None:
    facts = facts_of("lab1_pristine")
    stored = snapshot(facts, "group-add")["facts"]
    assert fingerprint(stored) == fingerprint(facts.to_dict())


def test_differences_of_equal_fingerprints_is_empty() -> None:
    fp = fingerprint(facts_of("lab1_pristine").to_dict())
    assert differences(fp, fp) == []


def test_differences_name_each_thing_a_provision_changed() -> None:
    pristine = facts_of("lab1_pristine")
    done = dataclasses.replace(
        pristine,
        files={**pristine.files, OVERRIDE_FILE: FileFacts(OVERRIDE_FILE, True, 0o644, 0, 0, "x\n")},
        worker=dataclasses.replace(pristine.worker, group_add=("998",), proc_groups=(0, 998), docker_ps_rc=0),
        record={"strategy": "group-add"},
    )
    diff = differences(fingerprint(pristine.to_dict()), fingerprint(done.to_dict()))
    assert f"files.{OVERRIDE_FILE}: None -> '{FileFacts(OVERRIDE_FILE, True, content='x' + chr(10)).sha256}'" in diff
    assert "worker.group_add: [] -> ['998']" in diff
    assert "worker.proc_groups: [0] -> [0, 998]" in diff
    assert "worker.docker_ps_rc: 1 -> 0" in diff
    assert "record: None -> {'strategy': 'group-add'}" in diff
    assert len(diff) == 5


def test_differences_between_real_pristine_and_group_add_captures_name_the_fix() -> None:
    diff = differences(fingerprint(facts_of("lab2_pristine").to_dict()),
                       fingerprint(facts_of("lab2_groupadd").to_dict()))
    keys = {d.split(":", 1)[0] for d in diff}
    assert {"files..env", f"files.{OVERRIDE_FILE}", "worker.group_add", "worker.proc_groups", "worker.id_output",
            "worker.docker_ps_rc", "record"} <= keys
    assert "worker.group_add: [] -> ['121']" in diff
    assert not {k for k in keys if k.startswith(("socket", "docker_gid", "bind_dirs"))}


def test_differences_see_a_socket_mode_and_a_bind_dir_change() -> None:
    pristine = facts_of("lab1_pristine")
    changed = dataclasses.replace(pristine, socket=dataclasses.replace(pristine.socket, mode=0o666),
                                  bind_dirs=pristine.bind_dirs[:1])
    diff = differences(fingerprint(pristine.to_dict()), fingerprint(changed.to_dict()))
    assert diff[0].startswith("socket.mode: ")
    assert diff[1].startswith("bind_dirs: [")
    assert len(diff) == 2


# --- ids -------------------------------------------------------------------------------------------------

def test_new_id_is_utc_timestamp_then_four_hex_digits() -> None:
    snap_id = new_id(datetime(2026, 11, 25, 17, 30, 0, tzinfo=timezone.utc))
    assert re.fullmatch(r"20261125T173000Z-[0-9a-f]{4}", snap_id)


def test_new_ids_sort_in_time_order() -> None:
    start = datetime(2026, 1, 31, 23, 59, 59, tzinfo=timezone.utc)
    ids = [new_id(start + timedelta(seconds=s)) for s in (0, 1, 61, 86400, 86400 * 40)]
    assert sorted(ids) == ids


def test_new_id_without_a_time_uses_now() -> None:
    assert new_id()[:4] == str(datetime.now(timezone.utc).year)
