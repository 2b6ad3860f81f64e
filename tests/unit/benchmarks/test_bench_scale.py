"""The scale benchmark's generated inventories: the same fleet in YAML and INI (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

from hostprep.inventory.hosts import load_inventory
from tests.benchmarks.scale import static_inventory, static_rows


def test_the_generated_yaml_and_ini_hold_the_same_fleet(tmp_path: Path) -> None:
    files = static_inventory(200, tmp_path)
    yml, ini = (load_inventory(files[k]) for k in ("yaml", "ini"))
    assert list(yml.hosts) == list(ini.hosts) and len(yml.hosts) == 200
    pattern = "airflow_workers:&prod:!canary"
    assert [h.name for h in yml.select(pattern)] == [h.name for h in ini.select(pattern)]
    assert len(yml.select(pattern)) == 48   # workers are i % 4 == 0 (50, all prod), less the canaries 0 and 100


def test_the_rows_name_each_format_and_the_selection() -> None:
    rows = static_rows([100], repeats=1)
    assert [r.split("|")[1].strip() for r in rows] == ["static yaml, 100 hosts", "static ini, 100 hosts"]
