"""Ansible --limit patterns: union, intersection, exclusion, globs, unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostprep.inventory.hosts import Inventory, InventoryError, load_inventory
from hostprep.inventory.patterns import order_terms, select_hosts, split_pattern

INI = """\
[web]
web1
web2
web3

[db]
db1
db2

[canary]
web1
db1

[prod:children]
web
db

[spare]
"""


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    path = tmp_path / "hosts.ini"
    path.write_text(INI)
    return load_inventory(path)


def names(inv: Inventory, pattern: str) -> list[str]:
    return [h.name for h in inv.select(pattern)]


def test_a_host_name_selects_that_host(inv: Inventory) -> None:
    assert names(inv, "db2") == ["db2"]


def test_a_group_selects_hosts_of_its_child_groups_too(inv: Inventory) -> None:
    assert names(inv, "prod") == ["web1", "web2", "web3", "db1", "db2"]


@pytest.mark.parametrize("pattern", ["all", "*"])
def test_all_and_star_select_every_host(inv: Inventory, pattern: str) -> None:
    assert names(inv, pattern) == ["web1", "web2", "web3", "db1", "db2"]


@pytest.mark.parametrize("pattern", ["db2:web1", "db2,web1", "db2, web1"])
def test_colon_and_comma_mean_union_in_inventory_order(inv: Inventory, pattern: str) -> None:
    assert names(inv, pattern) == ["web1", "db2"]


def test_intersection_keeps_hosts_in_both(inv: Inventory) -> None:
    assert names(inv, "web:&canary") == ["web1"]


def test_exclusion_removes_hosts(inv: Inventory) -> None:
    assert names(inv, "prod:!canary") == ["web2", "web3", "db2"]


def test_exclusions_apply_after_unions_whatever_the_order(inv: Inventory) -> None:
    assert names(inv, "!web1:web:&prod:db1") == ["web2", "web3", "db1"]


def test_only_exclusions_start_from_all(inv: Inventory) -> None:
    assert names(inv, "!web") == ["db1", "db2"]


def test_glob_matches_host_names(inv: Inventory) -> None:
    assert names(inv, "web*") == ["web1", "web2", "web3"]


def test_glob_matches_group_names(inv: Inventory) -> None:
    assert names(inv, "can*") == ["web1", "db1"]


def test_regex_term_matches_by_search(inv: Inventory) -> None:
    assert names(inv, "~(web|db)2") == ["web2", "db2"]


def test_subscript_picks_hosts_by_position_inclusive(inv: Inventory) -> None:
    assert names(inv, "web[0]") == ["web1"]
    assert names(inv, "web[1:2]") == ["web2", "web3"]
    assert names(inv, "web[-1]") == ["web3"]


def test_unknown_name_raises_listing_groups_and_hosts(inv: Inventory) -> None:
    with pytest.raises(InventoryError) as err:
        inv.select("wbe1")
    message = str(err.value)
    assert "'wbe1' matches no host or group" in message
    assert "Groups: all, ungrouped, web, db, canary, prod, spare" in message
    assert "Hosts: web1, web2, web3, db1, db2" in message


def test_typo_in_an_exclusion_is_an_error_not_a_wider_run(inv: Inventory) -> None:
    with pytest.raises(InventoryError, match="'canry' matches no host or group"):
        inv.select("prod:!canry")


def test_glob_matching_nothing_is_an_error(inv: Inventory) -> None:
    with pytest.raises(InventoryError, match="'zz\\*'"):
        inv.select("zz*")


def test_a_known_empty_group_selects_nothing_without_error(inv: Inventory) -> None:
    assert names(inv, "spare") == []


def test_an_empty_intersection_selects_nothing(inv: Inventory) -> None:
    assert names(inv, "web:&db") == []


@pytest.mark.parametrize("pattern", ["", "  ", "web:!"])
def test_empty_pattern_or_term_is_an_error(inv: Inventory, pattern: str) -> None:
    with pytest.raises(InventoryError):
        inv.select(pattern)


def test_bad_regex_is_an_inventory_error(inv: Inventory) -> None:
    with pytest.raises(InventoryError, match="bad regex"):
        inv.select("~web(")


def test_out_of_range_subscript_is_an_error(inv: Inventory) -> None:
    with pytest.raises(InventoryError, match="out of range"):
        inv.select("web[7]")


def test_split_pattern_keeps_bracketed_subscripts_whole() -> None:
    assert split_pattern("web[0:2]:db,&canary:!web2") == ["web[0:2]", "db", "&canary", "!web2"]


def test_order_terms_puts_unions_then_intersections_then_exclusions() -> None:
    assert order_terms(["!a", "&b", "c", "!d", "e"]) == ["c", "e", "&b", "!a", "!d"]
    assert order_terms(["!a"]) == ["all", "!a"]


def test_a_host_name_containing_colons_is_matched_whole() -> None:
    hosts = ["fe80::1", "web1"]
    assert select_hosts("fe80::1", hosts, {"all": hosts}) == ["fe80::1"]


def test_long_listings_are_shortened() -> None:
    hosts = [f"h{i}" for i in range(30)]
    with pytest.raises(InventoryError, match=r"h19 \.\.\. \(10 more\)"):
        select_hosts("nope", hosts, {"all": hosts})
