"""How long hostprep takes to load a big inventory (issue 12: linear-time host adding).

    python -m tests.benchmarks.inventory_load [--hosts 100000]

Writes an INI and a YAML inventory of N hosts (in 100 groups of N/100, under two parent groups,
with group vars) to a temp dir, then times ``load_inventory`` on each (best of 3) and a
``select`` of one group. Prints the figures; no test asserts them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hostprep.inventory.hosts import load_inventory


def write(folder: Path, hosts: int) -> tuple[Path, Path]:
    per = max(1, hosts // 100)
    groups = [(f"g{g:03d}", [f"h{g:03d}-{i:06d}" for i in range(per)]) for g in range(hosts // per)]
    ini = ["[all:vars]", "hostprep_strategy=group-add"]
    for name, members in groups:
        ini += [f"[{name}]", *members, f"[{name}:vars]", f"hostprep_airflow_uid={50000 + int(name[1:])}"]
    ini += ["[workers:children]", *(g for g, _ in groups[: len(groups) // 2]),
            "[schedulers:children]", *(g for g, _ in groups[len(groups) // 2:])]
    yml = ["all:", "  vars:", "    hostprep_strategy: group-add", "  children:"]
    for parent, part in (("workers", groups[: len(groups) // 2]), ("schedulers", groups[len(groups) // 2:])):
        yml += [f"    {parent}:", "      children:"]
        for name, members in part:
            yml += [f"        {name}:", "          vars:", f"            hostprep_airflow_uid: {50000 + int(name[1:])}",
                    "          hosts:", *(f"            {h}:" for h in members)]
    (folder / "big.ini").write_text("\n".join(ini) + "\n")
    (folder / "big.yml").write_text("\n".join(yml) + "\n")
    return folder / "big.ini", folder / "big.yml"


def best_of(n: int, fn: object) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hosts", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for path in write(Path(tmp), args.hosts):
            inv = load_inventory(path)
            assert len(inv.hosts) == args.hosts, len(inv.hosts)
            load = best_of(3, lambda: load_inventory(path))
            sel = best_of(3, lambda: inv.select("workers:&g001"))
            print(f"{path.suffix[1:]:>4}: {args.hosts} hosts, {path.stat().st_size / 1e6:.1f} MB: "
                  f"load {load:.2f} s, select 'workers:&g001' {sel * 1000:.0f} ms")


if __name__ == "__main__":
    main()
