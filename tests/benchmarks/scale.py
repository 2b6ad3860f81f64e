"""Inventory scale: loading and selecting hosts from a large static file, and from an EC2 fleet.

- static: a generated inventory of N hosts (YAML and INI: 4 groups under ``prod``/``staging``,
  a ``canary`` group, per-host ``ansible_host``), loaded with hostprep's own parser, then a
  ``--limit`` pattern selected; in-process, median of a few runs.
- ec2: M instances in moto's server (on 127.0.0.1), read through the unchanged
  ``tests/lab/ec2/lab.aws_ec2.yml``: ``ansible-inventory --list`` alone, then hostprep's whole
  load (the same subprocess plus the conversion) and a selection of the plugin's groups.

A benchmark, not a test: nothing asserts a timing.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from hostprep.inventory.hosts import load_inventory
from hostprep.inventory.sources import load_any
from tests.lab.fake_ec2 import LAB_FILE, moto_server

Log = Callable[[str], None]
GROUPS = ("airflow_workers", "airflow_schedulers", "webservers", "databases")


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def static_inventory(n: int, folder: Path) -> dict[str, Path]:
    """The same n hosts as YAML and INI: host i in GROUPS[i % 4], prod (3 of 4) or staging, 1 in 50 a canary."""
    env = {i: "staging" if i % 4 == 3 else "prod" for i in range(n)}
    name = {i: f"ip-10-{i // 65536 % 256}-{i // 256 % 256}-{i % 256}.ec2.internal" for i in range(n)}
    yml = ["all:", "  vars:", "    ansible_user: ubuntu", "  children:"]
    ini = ["[all:vars]", "ansible_user=ubuntu"]
    for e in ("prod", "staging"):
        yml += [f"    {e}:", "      children:"]
        for g in GROUPS:
            yml += [f"        {e}_{g}:", "          hosts:"]
            members = [i for i in range(n) if env[i] == e and GROUPS[i % 4] == g]
            yml += [f"            {name[i]}: {{ansible_host: 10.0.{i // 256 % 256}.{i % 256}}}" for i in members]
            ini += [f"[{e}_{g}]"] + [f"{name[i]} ansible_host=10.0.{i // 256 % 256}.{i % 256}" for i in members]
        ini += [f"[{e}:children]"] + [f"{e}_{g}" for g in GROUPS]
    for g in GROUPS:
        yml += [f"    {g}:", "      children:", f"        prod_{g}:", f"        staging_{g}:"]
        ini += [f"[{g}:children]", f"prod_{g}", f"staging_{g}"]
    yml += ["    canary:", "      hosts:"] + [f"        {name[i]}:" for i in range(0, n, 50)]
    ini += ["[canary]"] + [name[i] for i in range(0, n, 50)]
    files = {"yaml": folder / f"fleet{n}.yml", "ini": folder / f"fleet{n}.ini"}
    files["yaml"].write_text("\n".join(yml) + "\n")
    files["ini"].write_text("\n".join(ini) + "\n")
    return files


def static_rows(sizes: list[int], repeats: int = 3) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="hostprep-scale-") as t:
        for n in sizes:
            for fmt, path in static_inventory(n, Path(t)).items():
                load = _median_seconds(lambda: load_inventory(path), repeats)
                inv = load_inventory(path)
                pattern = "airflow_workers:&prod:!canary"
                pick = _median_seconds(lambda: inv.select(pattern), repeats)
                rows.append(f"| static {fmt}, {n} hosts | {load:.2f} s | {pick * 1000:.0f} ms "
                            f"(`{pattern}`: {len(inv.select(pattern))} hosts) | {load + pick:.2f} s |")
    return rows


def ec2_rows(instances: int, repeats: int = 3, log: Log = print) -> list[str]:
    """Instances in moto: 2 of 3 prod workers, the rest prod schedulers, staging, and stopped ones."""
    with moto_server() as ec2, tempfile.TemporaryDirectory(prefix="hostprep-scale-ec2-") as t:
        source = Path(t) / "prod.aws_ec2.yml"
        shutil.copy2(LAB_FILE, source)
        kinds = [("airflow-worker", "prod", False), ("airflow-worker", "prod", False), ("airflow-scheduler", "prod", False),
                 ("airflow-worker", "staging", False), ("airflow-worker", "prod", True)]
        per = instances // len(kinds)
        for role, env, stopped in kinds:
            ec2.launch({"Role": role, "Env": env, "LabAddress": "127.0.0.1", "LabPort": "22"}, per, stopped=stopped)
        log(f"{per * len(kinds)} instances in moto")
        saved = {k: os.environ.get(k) for k in ec2.env}
        os.environ.update(ec2.env)
        try:
            plain = _median_seconds(lambda: subprocess.run(["ansible-inventory", "-i", str(source), "--list"],
                                                           capture_output=True, check=True), repeats)
            whole = _median_seconds(lambda: load_any(source), repeats)
            inv = load_any(source)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        pick = _median_seconds(lambda: inv.select("tag_Role_airflow_worker"), repeats)
        n = len(inv.hosts)
        return [f"| aws_ec2 in moto, {per * len(kinds)} instances ({n} running prod) | {whole:.2f} s "
                f"(ansible-inventory alone {plain:.2f} s) | {pick * 1000:.1f} ms (`tag_Role_airflow_worker`: "
                f"{len(inv.select('tag_Role_airflow_worker'))} hosts) | {whole + pick:.2f} s |"]


def main(sizes: list[int] | None = None, instances: int = 300, log: Log = print) -> str:
    head = ["| inventory | load | select | total |", "|---|---|---|---|"]
    return "\n".join(head + static_rows(sizes or [1000, 10000]) + ec2_rows(instances, log=log))
