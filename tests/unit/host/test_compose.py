"""Compose helpers: .env, interpolation, the real lab compose file, the override and the Dockerfile block."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hostprep.host import compose
from hostprep.host.compose import (
    ComposeError,
    MANAGED_MARK,
    build_context,
    compose_file_value,
    interpolate,
    load_compose,
    parse_env,
    primary_group_is_root,
    render_override,
    service_user,
    set_env_var,
    split_user,
)
from hostprep.strategies.dockerfile import (  # the Dockerfile block belongs to the dockerfile strategy
    BLOCK_BEGIN, BLOCK_END, OVERRIDE_NOTES, block_gid, last_user, strip_block, with_block,
)

LAB = Path(__file__).parents[2] / "lab" / "airflow"
LAB_COMPOSE = (LAB / "docker-compose.yaml").read_text()
LAB_DOCKERFILE = (LAB / "Dockerfile").read_text()
LAB_ENV = (LAB / "env").read_text()
BASE, OVERRIDE = "docker-compose.yaml", "docker-compose.hostprep.yml"


# --- parse_env ---------------------------------------------------------------------------------------

def test_parse_env_reads_the_lab_env_file() -> None:
    assert parse_env(LAB_ENV) == {"AIRFLOW_UID": "50000"}


def test_parse_env_skips_comments_blank_lines_and_lines_without_equals() -> None:
    text = "# a comment\n\n   \nNOT_A_PAIR\nA=1\n  # indented comment\n"
    assert parse_env(text) == {"A": "1"}


def test_parse_env_strips_matching_quotes_and_export_and_spaces() -> None:
    text = "A='x y'\nB=\"z\"\nexport C=3\n D = 4 \nE='unbalanced\"\n"
    assert parse_env(text) == {"A": "x y", "B": "z", "C": "3", "D": "4", "E": "'unbalanced\""}


def test_parse_env_keeps_everything_after_the_first_equals() -> None:
    assert parse_env("URL=postgres://u:p@h/db?x=1") == {"URL": "postgres://u:p@h/db?x=1"}


def test_parse_env_of_nothing_is_empty() -> None:
    assert parse_env(None) == parse_env("") == {}


def test_parse_env_lets_a_later_line_win() -> None:
    assert parse_env("A=1\nA=2\n") == {"A": "2"}


# --- interpolate -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "env", "expected"), [
    ("${AIRFLOW_UID:-50000}:0", {}, "50000:0"),
    ("${AIRFLOW_UID:-50000}:0", {"AIRFLOW_UID": "1000"}, "1000:0"),
    ("${AIRFLOW_UID:-50000}:0", {"AIRFLOW_UID": ""}, "50000:0"),
    ("${AIRFLOW_UID-50000}:0", {"AIRFLOW_UID": ""}, ":0"),
    ("${AIRFLOW_UID-50000}:0", {}, "50000:0"),
    ("$AIRFLOW_UID:0", {"AIRFLOW_UID": "7"}, "7:0"),
    ("${AIRFLOW_UID}:0", {"AIRFLOW_UID": "7"}, "7:0"),
    ("$AIRFLOW_UID:0", {}, ":0"),
    ("$$AIRFLOW_UID", {"AIRFLOW_UID": "7"}, "$AIRFLOW_UID"),
    ("$${AIRFLOW_UID}", {"AIRFLOW_UID": "7"}, "${AIRFLOW_UID}"),
    ("cost $$5 ${A:-x}", {}, "cost $5 x"),
    ("${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags", {}, "./dags:/opt/airflow/dags"),
    ("plain", {"plain": "no"}, "plain"),
])
def test_interpolate_follows_compose_rules(value: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(value, env) == expected


# --- load_compose and services ---------------------------------------------------------------------

def test_load_compose_resolves_the_lab_files_anchors_and_merge_keys() -> None:
    data = load_compose(LAB_COMPOSE)
    worker = data["services"]["airflow-worker"]
    assert worker["user"] == "${AIRFLOW_UID:-50000}:0"
    assert worker["build"] == "."
    assert worker["restart"] == "always"
    assert "/var/run/docker.sock:/var/run/docker.sock" in worker["volumes"]
    assert worker["environment"] == {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                                     "AIRFLOW__CORE__LOAD_EXAMPLES": "false", "DUMB_INIT_SETSID": "0"}
    assert "DUMB_INIT_SETSID" not in data["services"]["airflow-scheduler"]["environment"]
    assert set(data["services"]) == {"airflow-apiserver", "airflow-scheduler", "airflow-worker"}


@pytest.mark.parametrize("text", [None, "", "# only a comment\n"])
def test_load_compose_of_absent_or_empty_yaml_is_empty(text: str | None) -> None:
    assert load_compose(text) == {}


@pytest.mark.parametrize("text, why", [
    ("- a list\n- not a mapping\n", "the top level must be a mapping, not a list"),
    ("services: [unclosed\n", "invalid YAML at line 2"),
    ("just text", "the top level must be a mapping, not a str"),
    ("services: x\n", "services must be a mapping of service names"),                 # issue 12, finding 11
    ("services:\n  w:\n    user: \udcff\n", "not UTF-8 text"),
])
def test_a_compose_file_hostprep_cannot_use_is_its_own_error_naming_the_file(text: str, why: str) -> None:
    with pytest.raises(ComposeError, match=f"^docker-compose.yaml: {re.escape(why)}"):
        load_compose(text, "docker-compose.yaml")


def test_service_user_of_the_lab_worker_is_50000_0_with_the_lab_env() -> None:
    assert service_user(load_compose(LAB_COMPOSE), "airflow-worker", parse_env(LAB_ENV)) == "50000:0"


def test_service_user_follows_airflow_uid_from_env() -> None:
    assert service_user(load_compose(LAB_COMPOSE), "airflow-worker", {"AIRFLOW_UID": "1001"}) == "1001:0"


def test_service_user_is_none_for_an_unknown_service_or_no_user() -> None:
    data = load_compose("services:\n  web:\n    image: nginx\n  odd: just-a-string\n")
    assert service_user(data, "web", {}) is None
    assert service_user(data, "odd", {}) is None
    assert service_user(data, "airflow-worker", {}) is None


def test_service_user_accepts_a_numeric_yaml_user() -> None:
    assert service_user(load_compose("services:\n  w:\n    user: 50000\n"), "w", {}) == "50000"


@pytest.mark.parametrize(("raw", "expected"), [
    ("${AIRFLOW_UID:-50000}:0", ("${AIRFLOW_UID:-50000}", "0")),
    ("${AIRFLOW_UID:-50000}", ("${AIRFLOW_UID:-50000}", None)),
    ("50000:998", ("50000", "998")),
    ("airflow", ("airflow", None)),
    ("${U:-1:2}:${G:-0}", ("${U:-1:2}", "${G:-0}")),
])
def test_split_user_splits_at_the_colon_outside_braces(raw: str, expected: tuple[str, str | None]) -> None:
    assert split_user(raw) == expected


@pytest.mark.parametrize(("user", "root"), [
    (None, True), ("", True), ("50000", True), ("50000:0", True), ("airflow:root", True),
    ("50000:998", False), ("50000:docker", False), ("50000:", False),
])
def test_primary_group_is_root_unless_user_names_another_group(user: str | None, root: bool) -> None:
    assert primary_group_is_root(user) is root


def test_build_context_of_the_lab_worker_is_dot_and_dockerfile() -> None:
    assert build_context(load_compose(LAB_COMPOSE), "airflow-worker") == (".", "Dockerfile")


def test_build_context_reads_the_long_form() -> None:
    data = load_compose("services:\n  w:\n    build:\n      context: ./img\n      dockerfile: Dockerfile.af\n")
    assert build_context(data, "w") == ("./img", "Dockerfile.af")
    data = load_compose("services:\n  w:\n    build: {}\n")
    assert build_context(data, "w") == (".", "Dockerfile")


def test_build_context_is_none_for_an_image_only_service() -> None:
    assert build_context(load_compose("services:\n  w:\n    image: apache/airflow:2.9.0\n"), "w") is None
    assert build_context(load_compose("services:\n  w:\n    build: [odd]\n"), "w") is None
    assert build_context({}, "w") is None


# --- COMPOSE_FILE and .env edits -----------------------------------------------------------------

def test_compose_file_value_without_one_chains_the_base_and_the_override() -> None:
    assert compose_file_value(LAB_ENV, BASE, [], OVERRIDE) == f"{BASE}:{OVERRIDE}"


def test_compose_file_value_keeps_docker_compose_override_yml_in_the_chain() -> None:
    value = compose_file_value(None, BASE, ["docker-compose.override.yml"], OVERRIDE)
    assert value == f"{BASE}:docker-compose.override.yml:{OVERRIDE}"


def test_compose_file_value_keeps_and_extends_an_existing_chain() -> None:
    env = "COMPOSE_FILE=docker-compose.yaml:monitoring.yml\n"
    assert compose_file_value(env, BASE, ["docker-compose.override.yml"], OVERRIDE) == \
        f"docker-compose.yaml:monitoring.yml:{OVERRIDE}"


def test_compose_file_value_does_not_add_the_override_twice() -> None:
    env = f"COMPOSE_FILE=a.yml:{OVERRIDE}:b.yml\n"
    assert compose_file_value(env, BASE, [], OVERRIDE) == f"a.yml:{OVERRIDE}:b.yml"


def test_set_env_var_appends_with_a_comment_and_keeps_every_other_line() -> None:
    text = "# Airflow\nAIRFLOW_UID=50000\n\n# db\nPOSTGRES_PASSWORD='s3cret'\n"
    out = set_env_var(text, "COMPOSE_FILE", "a.yml:b.yml")
    assert out.startswith(text)
    assert out[len(text):] == ("# Added by hostprep: loads hostprep's override on every `compose` run.\n"
                               "COMPOSE_FILE=a.yml:b.yml\n")
    assert parse_env(out)["POSTGRES_PASSWORD"] == "s3cret"


def test_set_env_var_adds_the_missing_final_newline_before_appending() -> None:
    out = set_env_var("AIRFLOW_UID=50000", "COMPOSE_FILE", "x.yml")
    assert out.splitlines() == ["AIRFLOW_UID=50000",
                                "# Added by hostprep: loads hostprep's override on every `compose` run.",
                                "COMPOSE_FILE=x.yml"]


def test_set_env_var_replaces_an_existing_line_in_place() -> None:
    text = "A=1\n# keep me\nexport COMPOSE_FILE=old.yml\nB=2"
    assert set_env_var(text, "COMPOSE_FILE", "new.yml") == "A=1\n# keep me\nCOMPOSE_FILE=new.yml\nB=2"


def test_set_env_var_does_not_touch_a_variable_with_a_longer_name() -> None:
    out = set_env_var("COMPOSE_FILE_EXTRA=1\n", "COMPOSE_FILE", "x.yml")
    assert out.startswith("COMPOSE_FILE_EXTRA=1\n") and out.endswith("COMPOSE_FILE=x.yml\n")


def test_set_env_var_on_no_file_creates_just_the_variable() -> None:
    assert parse_env(set_env_var(None, "COMPOSE_FILE", "x.yml")) == {"COMPOSE_FILE": "x.yml"}


def test_set_env_var_twice_with_the_same_value_changes_nothing_the_second_time() -> None:
    once = set_env_var(LAB_ENV, "COMPOSE_FILE", f"{BASE}:{OVERRIDE}")
    assert set_env_var(once, "COMPOSE_FILE", f"{BASE}:{OVERRIDE}") == once


# --- the override file -----------------------------------------------------------------------------

def test_render_override_for_group_add_names_the_gid_and_is_valid_compose() -> None:
    text = render_override({"airflow-worker": {"group_add": ["998"]}}, "group-add", 998)
    assert text.splitlines()[0].startswith(f"# {MANAGED_MARK} (strategy group-add)")
    assert "GID 998" in text
    assert yaml.safe_load(text) == {"services": {"airflow-worker": {"group_add": ["998"]}}}


def test_render_override_keeps_the_gid_a_string_so_compose_reads_a_group_id() -> None:
    text = render_override({"w": {"group_add": ["998"]}}, "group-add", 998)
    assert "- '998'" in text


def test_render_override_is_deterministic_whatever_the_insertion_order() -> None:
    a: dict[str, dict[str, Any]] = {"airflow-worker": {"user": "50000:0", "group_add": ["121"]},
                                    "airflow-scheduler": {"group_add": ["121"]}}
    b: dict[str, dict[str, Any]] = {"airflow-scheduler": {"group_add": ["121"]},
                                    "airflow-worker": {"group_add": ["121"], "user": "50000:0"}}
    assert render_override(a, "group-add", 121) == render_override(b, "group-add", 121)


def test_render_override_for_dockerfile_explains_the_user_without_group() -> None:
    # the header lines are the strategy's (hostprep.strategies.dockerfile); render_override writes what it is given
    text = render_override({"airflow-worker": {"user": "${AIRFLOW_UID:-50000}"}}, "dockerfile", None, OVERRIDE_NOTES)
    assert "`user:` without a group" in text
    assert yaml.safe_load(text)["services"]["airflow-worker"]["user"] == "${AIRFLOW_UID:-50000}"


# --- the Dockerfile block ----------------------------------------------------------------------------

def test_with_block_appends_a_marked_block_that_returns_to_the_image_user() -> None:
    out = with_block(LAB_DOCKERFILE, 998, 50000)
    assert out.startswith(LAB_DOCKERFILE)
    block = out[len(LAB_DOCKERFILE):].splitlines()
    assert block[0].startswith(f"{BLOCK_BEGIN} (GID 998;")
    assert block[1] == "USER root"
    assert "groupadd -g 998" in block[2] and "getent passwd 50000" in block[2] and 'usermod -aG "$g"' in block[2]
    assert block[3:] == ["USER airflow", BLOCK_END]
    assert last_user(out) == "airflow"


def test_with_block_is_idempotent() -> None:
    once = with_block(LAB_DOCKERFILE, 998, 50000)
    assert with_block(once, 998, 50000) == once


def test_with_block_with_another_gid_replaces_the_block() -> None:
    out = with_block(with_block(LAB_DOCKERFILE, 998, 50000), 121, 50000)
    assert out == with_block(LAB_DOCKERFILE, 121, 50000)
    assert out.count(BLOCK_BEGIN) == 1
    assert block_gid(out) == 121


def test_strip_block_gives_back_the_original_dockerfile() -> None:
    assert strip_block(with_block(LAB_DOCKERFILE, 998, 50000)) == LAB_DOCKERFILE


def test_with_block_on_a_dockerfile_without_final_newline_adds_one_before_the_block() -> None:
    out = with_block("FROM x\nUSER airflow", 121, 50000)
    assert out.startswith("FROM x\nUSER airflow\n# >>> hostprep")
    assert with_block(out, 121, 50000) == out


def test_with_block_stays_root_when_the_image_user_is_root_or_unset() -> None:
    for df in ("FROM x\n", "FROM x\nUSER root\n", "FROM x\nUSER 0\n"):
        out = with_block(df, 998, 50000)
        lines = out.splitlines()
        assert lines[-3] == "USER root"
        assert lines[-2].startswith("RUN set -e;")
        assert lines[-1] == BLOCK_END


def test_block_gid_is_none_without_a_block() -> None:
    assert block_gid(LAB_DOCKERFILE) is None
    assert block_gid(None) is None


@pytest.mark.parametrize(("dockerfile", "user"), [
    ("FROM x\nUSER airflow\nRUN a\nuser 50000:0\n", "50000:0"),
    ("FROM x\nRUN echo USER me\n", None),
    ("FROM x\nUSER\n", None),
])
def test_last_user_is_the_final_user_instruction(dockerfile: str, user: str | None) -> None:
    assert last_user(dockerfile) == user


def test_managed_marker_is_what_the_planner_looks_for() -> None:
    assert compose.MANAGED_MARK in render_override({"w": {"group_add": ["1"]}}, "group-add", 1)


def test_setting_compose_file_again_after_the_owner_deleted_it_adds_no_second_comment() -> None:
    once = compose.set_env_var("AIRFLOW_UID=50000\n", "COMPOSE_FILE", "a.yml:b.yml")
    dropped = "".join(ln for ln in once.splitlines(keepends=True) if not ln.startswith("COMPOSE_FILE="))
    assert compose.set_env_var(dropped, "COMPOSE_FILE", "a.yml:b.yml") == once
