"""Planning on facts parsed from real lab captures: what each strategy would change, and why.

"Changed" means the plan has steps; an already provisioned host plans nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from hostprep.host import compose
from hostprep.host.facts import OVERRIDE_FILE, DirFacts, Facts, FileFacts
from hostprep.host.probe import parse_probe
from hostprep.change.plan import Action, Plan, Step, make_plan
from hostprep.strategies.steps import COMMENTS_ONLY
from hostprep.inventory.settings import HostSettings
from hostprep.strategies import NAMES, dockerfile, get
from hostprep.strategies.chmod import plan_warning

FIXTURES = Path(__file__).parents[1] / "fixtures"
LAB = HostSettings()
PROJ = "/opt/airflow"
CHAIN = f"docker-compose.yaml:{OVERRIDE_FILE}"
NOTHING_TO_DO = "nothing to do: the host already matches the desired state"


def facts_of(name: str, settings: HostSettings = LAB) -> Facts:
    return parse_probe(name.split("_")[0], (FIXTURES / f"probe_{name}.txt").read_text(), settings)


def with_file(facts: Facts, name: str, content: str | None, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Facts:
    f = FileFacts(name, True, mode, uid, gid, content) if content is not None else FileFacts(name, False)
    return dataclasses.replace(facts, files={**facts.files, name: f})


def with_compose_user(facts: Facts, user: str) -> Facts:
    text = facts.files["docker-compose.yaml"].content or ""
    return with_file(facts, "docker-compose.yaml", text.replace('"${AIRFLOW_UID:-50000}:0"', f'"{user}"'))


def with_dirs(facts: Facts, *dirs: DirFacts) -> Facts:
    return dataclasses.replace(facts, bind_dirs=dirs)


def with_worker_groups(facts: Facts, gid: int, group_add: bool = True) -> Facts:
    worker = dataclasses.replace(facts.worker, group_add=(str(gid),) if group_add else (), proc_groups=(0, gid))
    return dataclasses.replace(facts, worker=worker)


def applied(facts: Facts, plan: Plan) -> Facts:
    """The facts after the plan's file writes landed (containers not recreated)."""
    for a in plan.actions:
        if a.op == "write":
            path, uid, gid, mode = a.args
            facts = with_file(facts, path.rsplit("/", 1)[1], a.content, int(mode, 8), int(uid), int(gid))
    return facts


PREVIOUS_WORDS = ("`invoke rollback` removes", "`hostprep rollback` removes")   # the old comment, the new


def in_current_words(facts: Facts) -> Facts:
    """A captured host (provisioned by a hostprep whose comments said `invoke rollback`) with the comments
    this version writes: what the host looks like once this version has provisioned it."""
    old, new = PREVIOUS_WORDS
    files = {n: dataclasses.replace(f, content=f.content.replace(old, new)) if f.content else f
             for n, f in facts.files.items()}
    return dataclasses.replace(facts, files=files)


def step(plan: Plan, name: str) -> Step:
    return next(s for s in plan.steps if s.name == name)


def provisioned_group_add(facts: Facts, gid: int) -> Facts:
    """A host group-add already fixed: override, COMPOSE_FILE, worker recreated with the docker GID."""
    override = compose.render_override({"airflow-worker": {"group_add": [str(gid)]}}, "group-add", gid)
    env = compose.set_env_var(facts.files[".env"].content, "COMPOSE_FILE", CHAIN)
    facts = with_file(with_file(facts, OVERRIDE_FILE, override), ".env", env)
    return dataclasses.replace(with_worker_groups(facts, gid), record={"strategy": "group-add"})


# --- group-add ----------------------------------------------------------------------------------------

def test_group_add_on_pristine_lab1_creates_the_override_edits_env_and_recreates() -> None:
    plan = make_plan(facts_of("lab1_pristine"), LAB, "group-add")
    assert [s.name for s in plan.steps] == [f"create {OVERRIDE_FILE}", "edit .env", "recreate airflow-worker"]
    assert (plan.changed, plan.blocked, plan.problems, plan.warnings, plan.notes) == (True, False, (), (), ())
    assert (plan.strategy, plan.docker_gid, plan.services) == ("group-add", 998, ("airflow-worker",))


def test_group_add_override_adds_the_docker_gid_as_a_string_and_leaves_user_alone() -> None:
    create = step(make_plan(facts_of("lab1_pristine"), LAB, "group-add"), f"create {OVERRIDE_FILE}")
    assert create.before is None and create.after is not None
    assert yaml.safe_load(create.after) == {"services": {"airflow-worker": {"group_add": ["998"]}}}
    assert create.actions == (Action("write", (f"{PROJ}/{OVERRIDE_FILE}", "0", "0", "644"), create.after),)


def test_group_add_on_lab2_uses_its_own_gid_121() -> None:
    plan = make_plan(facts_of("lab2_pristine"), LAB, "group-add")
    after = step(plan, f"create {OVERRIDE_FILE}").after
    assert yaml.safe_load(after or "")["services"]["airflow-worker"]["group_add"] == ["121"]
    assert plan.docker_gid == 121


def test_group_add_sets_compose_file_in_env_keeping_airflow_uid() -> None:
    edit = step(make_plan(facts_of("lab1_pristine"), LAB, "group-add"), "edit .env")
    assert edit.before == "AIRFLOW_UID=50000\n"
    assert compose.parse_env(edit.after) == {"AIRFLOW_UID": "50000", "COMPOSE_FILE": CHAIN}
    assert edit.actions[0].args == (f"{PROJ}/.env", "0", "0", "644")


def test_group_add_covers_every_listed_service_and_recreates_them_all() -> None:
    settings = HostSettings(services=("airflow-scheduler", "airflow-worker"))
    plan = make_plan(facts_of("lab1_pristine"), settings, "group-add")
    services = yaml.safe_load(step(plan, f"create {OVERRIDE_FILE}").after or "")["services"]
    assert services == {"airflow-scheduler": {"group_add": ["998"]}, "airflow-worker": {"group_add": ["998"]}}
    assert plan.steps[-1].actions == (Action("compose-up", ("airflow-scheduler", "airflow-worker")),)


def test_an_existing_compose_file_chain_in_env_is_kept_and_extended() -> None:
    facts = with_file(facts_of("lab1_pristine"), ".env", "AIRFLOW_UID=50000\nCOMPOSE_FILE=docker-compose.yaml:mon.yml\n")
    after = step(make_plan(facts, LAB, "group-add"), "edit .env").after
    assert after == f"AIRFLOW_UID=50000\nCOMPOSE_FILE=docker-compose.yaml:mon.yml:{OVERRIDE_FILE}\n"


def test_an_existing_docker_compose_override_yml_stays_in_the_chain() -> None:
    facts = with_file(facts_of("lab1_pristine"), "docker-compose.override.yml", "services: {}\n")
    after = step(make_plan(facts, LAB, "group-add"), "edit .env").after
    assert compose.parse_env(after)["COMPOSE_FILE"] == f"docker-compose.yaml:docker-compose.override.yml:{OVERRIDE_FILE}"


def test_a_new_env_file_takes_the_compose_files_owner() -> None:
    facts = with_file(facts_of("lab1_pristine"), ".env", None)
    facts = with_file(facts, "docker-compose.yaml", facts.files["docker-compose.yaml"].content, 0o640, 50000, 0)
    create = step(make_plan(facts, LAB, "group-add"), "create .env")
    assert create.actions[0].args == (f"{PROJ}/.env", "50000", "0", "644")
    assert compose.parse_env(create.after) == {"COMPOSE_FILE": CHAIN}


def test_an_edited_file_keeps_its_mode_and_owner() -> None:
    facts = with_file(facts_of("lab1_pristine"), ".env", "AIRFLOW_UID=50000\n", 0o600, 50000, 0)
    assert step(make_plan(facts, LAB, "group-add"), "edit .env").actions[0].args == (f"{PROJ}/.env", "50000", "0", "600")


def test_a_changed_docker_gid_rewrites_the_override() -> None:
    facts = provisioned_group_add(facts_of("lab1_pristine"), 998)
    facts = dataclasses.replace(facts, docker_gid=999, socket=dataclasses.replace(facts.socket, gid=999))
    plan = make_plan(facts, LAB, "group-add")
    assert [s.name for s in plan.steps] == [f"edit {OVERRIDE_FILE}", "recreate airflow-worker"]
    diff = plan.steps[0].diff()
    assert "-    - '998'\n" in diff and "+    - '999'\n" in diff


# --- already provisioned: nothing to do ---------------------------------------------------------------

def test_an_already_provisioned_host_plans_nothing() -> None:
    plan = make_plan(provisioned_group_add(facts_of("lab1_pristine"), 998), LAB, "group-add")
    assert plan.steps == ()
    assert plan.changed is False
    assert plan.notes == (NOTHING_TO_DO,)
    assert plan.problems == plan.warnings == ()


@pytest.mark.parametrize("capture", ["lab1_pristine", "lab2_pristine"])
@pytest.mark.parametrize("strategy", ["group-add", "dockerfile"])
def test_second_provision_changes_nothing(capture: str, strategy: str) -> None:
    facts = facts_of(capture)
    first = make_plan(facts, LAB, strategy)
    assert first.changed
    done = dataclasses.replace(with_worker_groups(applied(facts, first), facts.docker_gid or 0,
                                                  group_add=strategy == "group-add"),
                               record={"strategy": strategy})
    second = make_plan(done, LAB, strategy)
    assert (second.changed, second.steps, second.notes) == (False, (), (NOTHING_TO_DO,))


@pytest.mark.parametrize(("capture", "strategy"), [("lab2_groupadd", "group-add"), ("lab2_dockerfile", "dockerfile"),
                                                 ("lab2_chmod", "chmod"), ("lab2_groupadd_shallow", "group-add")])
def test_a_really_provisioned_lab_host_plans_nothing(capture: str, strategy: str) -> None:
    facts = in_current_words(facts_of(capture))
    assert (facts.record or {}).get("strategy") == strategy
    plan = make_plan(facts, LAB, strategy)
    assert (plan.changed, plan.problems, plan.notes) == (False, (), (NOTHING_TO_DO,))


@pytest.mark.parametrize(("capture", "strategy", "files"), [
    ("lab2_groupadd", "group-add", [OVERRIDE_FILE]), ("lab2_groupadd_shallow", "group-add", [OVERRIDE_FILE]),
    ("lab2_dockerfile", "dockerfile", ["Dockerfile", OVERRIDE_FILE])])
def test_a_host_the_previous_version_provisioned_gets_its_comments_rewritten_and_nothing_recreated(
        capture: str, strategy: str, files: list[str]) -> None:
    facts = facts_of(capture)   # captured from a real host provisioned when the comments said `invoke rollback`
    plan = make_plan(facts, LAB, strategy)
    assert [(s.name, s.why) for s in plan.steps] == [(f"rewrite {n}", COMMENTS_ONLY) for n in files]
    assert [a.op for a in plan.actions] == ["write"] * len(files)   # no compose-build, no compose-up
    assert all("+# " in s.diff() and "`hostprep rollback` removes" in s.diff() for s in plan.steps)
    assert make_plan(applied(facts, plan), LAB, strategy).steps == ()


def test_an_override_that_differs_in_meaning_is_not_a_comment_rewrite() -> None:
    old = compose.render_override({"airflow-worker": {"group_add": ["998"]}}, "group-add", 998)
    facts = with_file(provisioned_group_add(facts_of("lab1_pristine"), 998), OVERRIDE_FILE,
                      old.replace("`hostprep", "`invoke").replace("- '998'", "- '998'\n    user: '50000:0'"))
    plan = make_plan(facts, LAB, "group-add")
    assert [s.name for s in plan.steps] == [f"edit {OVERRIDE_FILE}", "recreate airflow-worker"]


def test_an_override_that_does_not_parse_is_rewritten_and_recreated() -> None:
    facts = with_file(provisioned_group_add(facts_of("lab1_pristine"), 998), OVERRIDE_FILE, "services: [\n")
    assert [s.name for s in make_plan(facts, LAB, "group-add").steps] == [f"edit {OVERRIDE_FILE}",
                                                                            "recreate airflow-worker"]


def test_a_reordered_or_recommented_override_is_rewritten_without_a_recreate() -> None:
    facts = provisioned_group_add(facts_of("lab1_pristine"), 998)
    mine = facts.files[OVERRIDE_FILE].content or ""
    moved = "# someone's note\n" + yaml.safe_dump(yaml.safe_load(mine), default_flow_style=True)
    plan = make_plan(with_file(facts, OVERRIDE_FILE, moved), LAB, "group-add")
    assert [(s.name, s.why, s.after) for s in plan.steps] == [(f"rewrite {OVERRIDE_FILE}", COMMENTS_ONLY, mine)]


def test_a_dockerfile_whose_instructions_changed_is_rebuilt_even_if_its_comments_did_too() -> None:
    facts = facts_of("lab2_dockerfile")
    text = facts.files["Dockerfile"].content or ""
    assert "`invoke rollback` removes this block" in text
    edited = with_file(facts, "Dockerfile", text.replace("usermod -aG", "usermod -G"))
    names = [s.name for s in make_plan(edited, LAB, "dockerfile").steps]
    assert names == ["edit Dockerfile", f"rewrite {OVERRIDE_FILE}", "build airflow-worker", "recreate airflow-worker"]


def test_dockerfile_comment_lines_are_dropped_but_the_parser_directives_at_its_top_are_kept() -> None:
    text = "# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n  # indented\nRUN a\n"
    assert dockerfile.instructions(text) == ["# syntax=docker/dockerfile:1", "# escape=`", "FROM x", "RUN a"]
    assert dockerfile.instructions(text.replace("escape=`", "escape=\\")) != dockerfile.instructions(text)


@pytest.mark.parametrize(("capture", "strategy"), [("lab2_groupadd", "group-add"), ("lab2_dockerfile", "dockerfile")])
def test_the_planned_files_are_byte_for_byte_what_a_real_provision_left_on_the_host(capture: str,
                                                                                     strategy: str) -> None:
    plan, done = make_plan(facts_of("lab2_pristine"), LAB, strategy), in_current_words(facts_of(capture))
    written = {a.args[0].rsplit("/", 1)[1]: a.content for a in plan.actions if a.op == "write"}
    assert written == {n: done.files[n].content for n in written}


def test_a_lost_override_on_a_provisioned_host_is_recreated() -> None:
    plan = make_plan(facts_of("lab2_groupadd_override_deleted"), LAB, "group-add")
    assert [s.name for s in plan.steps] == [f"create {OVERRIDE_FILE}", "recreate airflow-worker"]


def test_a_docker_gid_changed_on_a_provisioned_host_rewrites_the_override() -> None:
    facts = facts_of("lab2_groupadd_gid_changed")
    plan = make_plan(facts, LAB, "group-add")
    assert [s.name for s in plan.steps] == [f"edit {OVERRIDE_FILE}", "recreate airflow-worker"]
    assert changed_lines(plan.steps[0].diff())[1][-1] == f"    - '{facts.docker_gid}'"


def test_a_removed_dockerfile_block_is_put_back_rebuilt_and_recreated() -> None:
    plan = make_plan(facts_of("lab2_dockerfile_block_removed"), LAB, "dockerfile")
    assert [s.name for s in plan.steps] == ["edit Dockerfile", f"rewrite {OVERRIDE_FILE}", "build airflow-worker",
                                            "recreate airflow-worker"]


def test_a_dockerd_restart_undoes_chmod_and_the_plan_redoes_it() -> None:
    plan = make_plan(facts_of("lab2_chmod_dockerd_restarted"), LAB, "chmod")
    assert [(s.name, s.before, s.after) for s in plan.steps] == [
        ("chmod 666 /var/run/docker.sock", "660 root:docker", "666 root:docker")]


def test_a_run_interrupted_before_the_recreate_only_recreates() -> None:
    facts = facts_of("lab1_pristine")
    again = make_plan(applied(facts, make_plan(facts, LAB, "group-add")), LAB, "group-add")
    assert [s.name for s in again.steps] == ["recreate airflow-worker"]


def test_a_dockerfile_run_interrupted_before_the_build_builds_and_recreates() -> None:
    facts = facts_of("lab2_pristine")
    again = make_plan(applied(facts, make_plan(facts, LAB, "dockerfile")), LAB, "dockerfile")
    assert [s.name for s in again.steps] == ["build airflow-worker", "recreate airflow-worker"]


def test_make_plan_is_pure_the_same_facts_give_the_same_plan() -> None:
    facts = facts_of("lab2_pristine")
    assert make_plan(facts, LAB, "dockerfile") == make_plan(facts, LAB, "dockerfile")


def test_the_strategy_defaults_to_the_host_setting() -> None:
    assert make_plan(facts_of("lab1_pristine"), HostSettings(strategy="chmod")).strategy == "chmod"


# --- dockerfile ------------------------------------------------------------------------------------------

def test_dockerfile_edits_the_dockerfile_overrides_user_builds_and_recreates() -> None:
    plan = make_plan(facts_of("lab1_pristine"), LAB, "dockerfile")
    assert [s.name for s in plan.steps] == ["edit Dockerfile", f"create {OVERRIDE_FILE}", "edit .env",
                                            "build airflow-worker", "recreate airflow-worker"]
    assert [a.op for a in plan.actions] == ["write", "write", "write", "compose-build", "compose-up"]
    assert plan.problems == plan.warnings == ()


def test_dockerfile_appends_the_group_block_with_the_hosts_gid() -> None:
    facts = facts_of("lab2_pristine")
    edit = step(make_plan(facts, LAB, "dockerfile"), "edit Dockerfile")
    assert edit.after == dockerfile.with_block(facts.files["Dockerfile"].content or "", 121, 50000)
    assert dockerfile.block_gid(edit.after) == 121
    assert "+USER airflow\n" in edit.diff()


def test_dockerfile_override_sets_user_without_a_group() -> None:
    after = step(make_plan(facts_of("lab1_pristine"), LAB, "dockerfile"), f"create {OVERRIDE_FILE}").after
    assert yaml.safe_load(after or "") == {"services": {"airflow-worker": {"user": "${AIRFLOW_UID:-50000}"}}}
    assert "group_add" not in (after or "")


def test_dockerfile_needs_a_build_context_in_the_project() -> None:
    facts = facts_of("lab1_pristine")
    facts = with_file(facts, "docker-compose.yaml", (facts.files["docker-compose.yaml"].content or "").replace(
        "  build: .\n", ""))
    plan = make_plan(facts, LAB, "dockerfile")
    assert plan.blocked and plan.steps == ()
    assert plan.problems == ("service airflow-worker has no `build: .` in the compose file; the dockerfile "
                             "strategy needs one (or use group-add)",)


def test_dockerfile_needs_the_dockerfile() -> None:
    plan = make_plan(with_file(facts_of("lab1_pristine"), "Dockerfile", None), LAB, "dockerfile")
    assert plan.problems == (f"Dockerfile not found in {PROJ}",)


# --- chmod ---------------------------------------------------------------------------------------------

def test_chmod_plans_one_socket_chmod_with_before_after_and_a_warning() -> None:
    plan = make_plan(facts_of("lab1_pristine"), LAB, "chmod")
    assert [s.name for s in plan.steps] == ["chmod 666 /var/run/docker.sock"]
    s = plan.steps[0]
    assert (s.before, s.after) == ("660 root:docker", "666 root:docker")
    assert s.actions == (Action("chmod", ("/var/run/docker.sock", "666")),)
    assert plan.warnings == (plan_warning(facts_of("lab1_pristine")),)
    assert "root-equivalent" in plan.warnings[0]


def test_chmod_on_a_socket_already_666_plans_nothing_but_still_warns() -> None:
    facts = facts_of("lab1_pristine")
    facts = dataclasses.replace(facts, socket=dataclasses.replace(facts.socket, mode=0o666))
    plan = make_plan(facts, LAB, "chmod")
    assert (plan.changed, plan.notes, plan.warnings) == (False, (NOTHING_TO_DO,), (plan_warning(facts),))


def test_chmod_leaves_a_managed_override_in_place_and_says_so() -> None:
    facts = provisioned_group_add(facts_of("lab1_pristine"), 998)
    facts = dataclasses.replace(facts, record=None)
    plan = make_plan(facts, LAB, "chmod")
    assert f"{OVERRIDE_FILE} left in place (not needed by chmod)" in plan.notes
    assert all(a.op == "chmod" for a in plan.actions)


# --- preconditions -------------------------------------------------------------------------------------

def test_dockerd_down_blocks_the_plan() -> None:
    plan = make_plan(dataclasses.replace(facts_of("lab1_pristine"), dockerd_running=False), LAB, "group-add")
    assert plan.problems == ("dockerd is not running on the host",)
    assert (plan.blocked, plan.changed, plan.steps, plan.notes) == (True, False, (), ())


@pytest.mark.parametrize("strategy", ["group-add", "dockerfile"])
def test_no_docker_group_blocks_group_mapping(strategy: str) -> None:
    plan = make_plan(dataclasses.replace(facts_of("lab1_pristine"), docker_gid=None), LAB, strategy)
    assert plan.problems == ("the host has no 'docker' group; group mapping needs one (or use --strategy chmod)",)


def test_no_docker_group_is_fine_for_chmod() -> None:
    plan = make_plan(dataclasses.replace(facts_of("lab1_pristine"), docker_gid=None), LAB, "chmod")
    assert (plan.problems, len(plan.steps)) == ((), 1)


def test_a_missing_socket_blocks_the_plan() -> None:
    settings = HostSettings(socket_path="/var/run/hostprep-nope.sock")
    plan = make_plan(facts_of("lab1_no_socket", settings), settings, "group-add")
    assert plan.problems == ("the Docker socket /var/run/hostprep-nope.sock does not exist",)


def test_no_worker_container_blocks_the_plan() -> None:
    settings = HostSettings(worker_service="airflow-triggerer", services=("airflow-triggerer",))
    plan = make_plan(facts_of("lab1_worker_not_found", settings), settings, "group-add")
    assert plan.problems == (f"no container for service airflow-triggerer in {PROJ} (is the project up?)",)


def test_a_missing_project_dir_blocks_the_plan() -> None:
    settings = HostSettings(project_dir="/opt/hostprep-nope")
    plan = make_plan(facts_of("lab2_no_project", settings), settings, "group-add")
    assert plan.problems == ("the Compose project dir /opt/hostprep-nope does not exist",)


def test_a_project_without_compose_file_blocks_the_plan() -> None:
    plan = make_plan(with_file(facts_of("lab1_pristine"), "docker-compose.yaml", None), LAB, "group-add")
    assert plan.problems == (f"no compose file (compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml) "
                             f"in {PROJ}",)


def test_no_compose_tool_blocks_the_plan() -> None:
    plan = make_plan(dataclasses.replace(facts_of("lab2_pristine"), compose_flavour=None), LAB, "group-add")
    assert plan.problems == ("neither `docker compose` (v2) nor `docker-compose` (v1) is installed",)


def test_another_recorded_strategy_must_be_rolled_back_first() -> None:
    facts = dataclasses.replace(facts_of("lab1_pristine"), record={"strategy": "dockerfile"})
    plan = make_plan(facts, LAB, "group-add")
    (problem,) = plan.problems   # without the snapshot from before it (see test_switch.py for the switch)
    assert problem.startswith("strategy dockerfile is applied on this host") and problem.endswith(
        "`hostprep rollback` it before applying group-add")


def test_the_same_recorded_strategy_is_not_a_problem() -> None:
    facts = dataclasses.replace(facts_of("lab1_pristine"), record={"strategy": "group-add"})
    assert make_plan(facts, LAB, "group-add").problems == ()


def test_every_problem_is_listed_at_once() -> None:
    facts = dataclasses.replace(facts_of("lab1_pristine"), dockerd_running=False, docker_gid=None,
                                compose_flavour=None)
    assert len(make_plan(facts, LAB, "group-add").problems) == 3


def test_an_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'sudo'; choose one of group-add, dockerfile, chmod"):
        make_plan(facts_of("lab1_pristine"), LAB, "sudo")


def test_every_registered_strategy_name_resolves() -> None:
    assert [get(n).name for n in NAMES] == list(NAMES)


# --- the user:group trap -------------------------------------------------------------------------------

def test_a_compose_user_with_the_docker_gid_as_primary_group_is_warned_and_fixed_in_the_override() -> None:
    facts = with_compose_user(facts_of("lab1_pristine"), "${AIRFLOW_UID:-50000}:998")
    plan = make_plan(facts, LAB, "group-add")
    assert plan.warnings == ("problem in compose file: service airflow-worker has user '50000:998'; the Airflow "
                             "image needs primary group 0 (the docker GID belongs in group_add) - hostprep's "
                             "override keeps 50000 with primary group 0",)
    override = yaml.safe_load(step(plan, f"create {OVERRIDE_FILE}").after or "")
    assert override == {"services": {"airflow-worker": {"group_add": ["998"], "user": "50000:0"}}}


def test_the_trap_fix_keeps_the_uid_from_env() -> None:
    facts = with_compose_user(facts_of("lab1_pristine"), "${AIRFLOW_UID:-50000}:docker")
    facts = with_file(facts, ".env", "AIRFLOW_UID=1001\n")
    override = yaml.safe_load(step(make_plan(facts, LAB, "group-add"), f"create {OVERRIDE_FILE}").after or "")
    assert override["services"]["airflow-worker"]["user"] == "1001:0"


def test_the_trap_is_fixed_even_for_chmod() -> None:
    facts = with_compose_user(facts_of("lab1_pristine"), "50000:998")
    plan = make_plan(facts, LAB, "chmod")
    assert [s.name for s in plan.steps] == ["chmod 666 /var/run/docker.sock", f"create {OVERRIDE_FILE}",
                                            "edit .env", "recreate airflow-worker"]
    assert len(plan.warnings) == 2


def test_a_user_with_primary_group_root_is_no_trap() -> None:
    facts = with_compose_user(facts_of("lab1_pristine"), "${AIRFLOW_UID:-50000}:root")
    assert make_plan(facts, LAB, "group-add").warnings == ()


# --- bind-mounted folders --------------------------------------------------------------------------------

def test_a_missing_bind_dir_is_created_owned_by_airflow_uid_group_0() -> None:
    facts = with_dirs(facts_of("lab1_pristine"), DirFacts("logs", False))
    plan = make_plan(facts, LAB, "chmod")
    mkdir = step(plan, "mkdir logs")
    assert mkdir.actions == (Action("mkdir", (f"{PROJ}/logs", "50000", "0", "755")),)
    assert (mkdir.before, mkdir.after) == (None, "50000:0 755")
    assert plan.steps[-1].name == "recreate airflow-worker"


def test_a_root_owned_755_bind_dir_is_chowned_keeping_its_group_and_mode() -> None:
    facts = with_dirs(facts_of("lab1_pristine"), DirFacts("dags", True, 0, 0, 0o755))
    chown = step(make_plan(facts, LAB, "group-add"), "chown dags")
    assert chown.actions == (Action("chown", (f"{PROJ}/dags", "50000", "0")),)
    assert (chown.before, chown.after) == ("0:0 755", "50000:0 755")


def test_a_world_writable_bind_dir_is_warned_about_and_never_chmodded() -> None:
    facts = with_dirs(facts_of("lab1_pristine"), DirFacts("logs", True, 0, 0, 0o777))
    plan = make_plan(facts, LAB, "group-add")
    assert plan.warnings == ("logs is world-writable (777); hostprep never opens folders to the world - tighten "
                             "it with chmod o-w once the owner is right",)
    assert not [a for a in plan.actions if a.op in ("chmod", "chown") or "777" in a.args]


def test_a_group_0_writable_bind_dir_is_already_usable() -> None:
    facts = with_dirs(facts_of("lab1_pristine"), DirFacts("dags", True, 0, 0, 0o775))
    assert not [s for s in make_plan(facts, LAB, "group-add").steps if "dags" in s.name]


def test_an_absolute_bind_dir_is_used_as_is() -> None:
    settings = HostSettings(bind_dirs=("/data/airflow-logs",))
    facts = with_dirs(facts_of("lab1_pristine"), DirFacts("/data/airflow-logs", False))   # captured with the defaults
    mkdir = step(make_plan(facts, settings, "group-add"), "mkdir /data/airflow-logs")
    assert mkdir.actions[0].args[0] == "/data/airflow-logs"


def test_bind_dirs_honour_a_custom_airflow_uid() -> None:
    settings = HostSettings(airflow_uid=1001)
    facts = with_dirs(facts_of("lab1_pristine", settings), DirFacts("dags", True, 50000, 0, 0o755))
    assert step(make_plan(facts, settings, "group-add"), "chown dags").actions[0].args[1] == "1001"


# --- Action and Step --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["/opt/airflow; rm -rf /", "a b", "", "$(id)", "`id`", "a\nb", "x|y", "*", "a'b"])
def test_action_rejects_unsafe_arguments(bad: str) -> None:
    with pytest.raises(ValueError, match="unsafe value in action write"):
        Action("write", (bad, "0", "0", "644"))


def test_action_rejects_an_unsafe_op() -> None:
    with pytest.raises(ValueError, match="unsafe value"):
        Action("write; reboot")


@pytest.mark.parametrize("good", ["/opt/airflow/.env", "sha256:ab12", "hostprep-lab/airflow:latest", "user@x+y=z"])
def test_action_accepts_paths_image_ids_and_refs(good: str) -> None:
    assert Action("tag", (good,)).args == (good,)


def test_action_content_is_not_restricted_it_travels_base64() -> None:
    assert Action("write", ("/p", "0", "0", "644"), "a; rm -rf / $(id)\n").content == "a; rm -rf / $(id)\n"


def test_action_and_plan_reprs_are_one_line() -> None:
    assert repr(Action("chown", ("/opt/airflow/dags", "50000", "0"))) == "<Action chown /opt/airflow/dags 50000 0>"
    assert repr(make_plan(facts_of("lab1_pristine"), LAB, "group-add")) == \
        "<Plan lab1 group-add steps=3 problems=0>"


def test_step_diff_is_a_unified_diff_named_after_the_step() -> None:
    s = Step("edit .env", "why", (), "A=1\nB=2\n", "A=1\nB=3\n")
    assert s.diff() == ("--- before/edit .env\n+++ after/edit .env\n@@ -1,2 +1,2 @@\n"
                        " A=1\n-B=2\n+B=3\n")


def test_step_diff_of_a_new_file_adds_every_line() -> None:
    assert Step("create x", "why", (), None, "a\nb\n").diff().endswith("@@ -0,0 +1,2 @@\n+a\n+b\n")


def test_step_diff_is_empty_for_a_step_without_before_and_after() -> None:
    assert Step("recreate w", "why", (Action("compose-up", ("w",)),)).diff() == ""


def changed_lines(diff: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines of a unified diff, without their -/+ marks."""
    lines = [ln for ln in diff.splitlines() if not ln.startswith(("---", "+++"))]
    return [ln[1:] for ln in lines if ln.startswith("-")], [ln[1:] for ln in lines if ln.startswith("+")]


def test_step_diff_keeps_single_line_values_on_their_own_lines() -> None:
    s = make_plan(facts_of("lab1_pristine"), LAB, "chmod").steps[0]
    assert changed_lines(s.diff()) == (["660 root:docker"], ["666 root:docker"])


def test_step_diff_of_an_env_without_final_newline_shows_only_real_lines() -> None:
    facts = with_file(facts_of("lab1_pristine"), ".env", "AIRFLOW_UID=50000")
    edit = step(make_plan(facts, LAB, "group-add"), "edit .env")
    removed, added = changed_lines(edit.diff())
    assert set(removed) <= {"AIRFLOW_UID=50000"}
    assert set(added) <= set((edit.after or "").splitlines())
    assert "COMPOSE_FILE=docker-compose.yaml:docker-compose.hostprep.yml" in added


# --- hostprep_compose_file ---------------------------------------------------------------------------

def test_a_configured_compose_file_name_is_the_one_planned_with() -> None:
    settings = HostSettings(compose_file="airflow.yml")
    facts = facts_of("lab1_pristine", settings)
    facts = with_file(with_file(facts, "airflow.yml", facts.files["docker-compose.yaml"].content),
                      "docker-compose.yaml", None)
    plan = make_plan(facts, settings, "group-add")
    assert plan.problems == ()
    assert compose.parse_env(step(plan, "edit .env").after)["COMPOSE_FILE"] == f"airflow.yml:{OVERRIDE_FILE}"
