"""The start-up row: each tool at N=0, `--version` and its audit of an empty inventory.

Start-up is what a scheduled audit pays on every run whatever the fleet's size; measured apart, it is
read apart from the cost per added host (``bench.growth``). A sample counts if the tool really started
(``protocol.started``): every tool exits as it likes when there is no host.
"""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable

from tests.benchmarks import protocol
from tests.benchmarks.measure import Sample, measure
from tests.benchmarks.protocol import Load

KINDS = ("version", "empty inventory")
# The fleet rows' configuration whose N=0 run is each tool's start-up, and its `--version` command line.
TOOLS = {"hostprep": ("hostprep", [sys.executable, "-m", "hostprep", "--version"]),
         "ansible-playbook": ("ansible-raw", ["ansible-playbook", "--version"]),
         "pyinfra": ("pyinfra", ["pyinfra", "--version"])}
Commands = dict[str, tuple[list[str], dict[str, str]]]


@dataclass
class Startup:
    """Counted start-up samples per (tool, kind), and why the others were not counted."""

    cores: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    reasons: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    last: dict[tuple[str, str], Sample] = field(default_factory=dict)
    loads: list[Load] = field(default_factory=list)

    def add(self, tool: str, kind: str, s: Sample, refuse_loaded: bool = False) -> str:
        """Count a sample or record why not; the log's note."""
        key = (tool, kind)
        self.samples.setdefault(key, [])
        self.last[key] = s
        self.loads.append(s.load)
        busy = s.load.above(self.cores)
        why = "" if protocol.started(kind, s.output) else f"did not start (exit {s.exit_code})"
        why = why or (f"taken at {s.load}" if refuse_loaded and busy else "")
        if why:
            self.reasons.setdefault(key, []).append(why)
            return f"  NOT COUNTED: {why}"
        self.samples[key].append(s)
        return f"  LOADED ({s.load})" if busy else ""

    def median(self, tool: str, kind: str, attr: str) -> float:
        got = self.samples.get((tool, kind)) or []
        return statistics.median(getattr(s, attr) for s in got) if got else float("nan")

    def check(self) -> None:
        """Stop the benchmark at the first row that counted no sample."""
        for (tool, kind), got in self.samples.items():
            if not got:
                last = self.last.get((tool, kind))
                raise protocol.NoSample(protocol.why_not_counted(
                    f"{tool} ({kind})", 0, self.reasons.get((tool, kind), []), last.output if last else ""))

    def table(self) -> str:
        rows = ["| N=0 start-up | `--version` wall | `--version` CPU | empty inventory wall | empty inventory CPU | "
                "samples counted | of them loaded |", "|---|---|---|---|---|---|---|"]
        for tool in TOOLS:
            got = [s for kind in KINDS for s in self.samples.get((tool, kind), [])]
            if not got:
                continue
            taken = len(got) + sum(len(self.reasons.get((tool, k), [])) for k in KINDS)
            cells = [f"{self.median(tool, k, a):.2f} s" for k in KINDS for a in ("wall", "cpu")]
            rows.append(f"| {tool} | " + " | ".join(cells) + f" | {len(got)}/{taken} | "
                        f"{sum(s.load.above(self.cores) for s in got)} |")
        return "\n".join(rows)


def run(fleet_commands: Commands, repeats: int, log: Callable[[str], None], refuse_loaded: bool = False) -> Startup:
    """Each tool's two start-up runs, a warm-up and then ``repeats`` interleaved rounds.

    ``fleet_commands``: the benchmark's commands for an empty inventory (``bench.commands_for(0, ...)``).
    """
    todo = {(tool, "version"): (argv, fleet_commands[config][1]) for tool, (config, argv) in TOOLS.items()}
    todo |= {(tool, "empty inventory"): fleet_commands[config] for tool, (config, _) in TOOLS.items()}
    result = Startup()
    for (tool, kind), (argv, env) in todo.items():
        measure(tool, 0, argv, env)
    for rnd in range(repeats):
        for (tool, kind), (argv, env) in todo.items():
            s = measure(tool, 0, argv, env)
            note = result.add(tool, kind, s, refuse_loaded)
            log(f"  n=0 {tool:<16} {kind:<16} round {rnd + 1}: {s.wall:6.2f}s wall {s.cpu:6.2f}s cpu "
                f"exit {s.exit_code} {s.load}{note}")
    result.check()
    return result
