"""Fleet benchmark: the same audit with hostprep, ansible-playbook and pyinfra on N lab hosts.

Brings up N light lab hosts (own sshd and dockerd, only the worker container,
run as 50000:0 with the socket mounted) under the name prefix
``hostprep-bench``, runs each tool several times, interleaved, and prints per
tool the median wall time, the controller's CPU seconds and peak memory (the
whole process tree, sampled), the ratio to hostprep and the SSH connections and
exec sessions each host's sshd logged. A sample counts only if the tool's per-host
results show the whole audit done on every host (``complete.py``), never by its exit code.
Ansible runs in its strongest configuration (one raw task, pipelining, a fresh control
path: ansible-raw; and with warm ControlPersist masters: ansible-raw-warm) and as the
typical multi-task playbook (ansible-tasks); each peer's ratio is reported against its
strongest configuration. Then it provisions the fleet once and
prints how much of ``invoke provision`` is the hosts' own ``docker compose`` work.

Benchmarks are not tests: nothing here asserts a timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tests.benchmarks import complete, protocol, startup
from tests.benchmarks.measure import Sample, measure, tool_env
from tests.benchmarks.protocol import Load
from tests.lab import lab

HERE = Path(__file__).resolve().parent
# The benchmark's own fleet: hostprep-bench-* on 2401+ beside the default lab; beside a lab with its own
# HOSTPREP_LAB_PREFIX (another checkout's), <prefix>bench-* on that lab's port base + 200, so two checkouts'
# benchmarks never share (or remove) each other's hosts. A port already in use stops lab.up, never reuses it.
PREFIX, PORT_BASE = ("hostprep-bench", 2400) if lab.PREFIX == "hostprep-lab" else \
    (f"{lab.PREFIX}bench", lab.PORT_BASE + 200)
PEER_SCRIPT = ("getent group docker; stat -c '%a %U %G' /var/run/docker.sock; "
               "w=$(docker ps -q --filter label=com.docker.compose.service=airflow-worker); "
               "docker exec $w id; docker exec $w docker ps 2>&1; echo \"docker ps exit $?\"")
# The last line makes the script's own exit 0 on a drifted host: docker ps refusing is the audit's
# answer, not a failed run (ansible's raw task says so with failed_when: false; pyinfra printed
# nothing but the refusal when the command failed, so its audit looked incomplete).
Log = Callable[[str], None]


def bench_fleet(prefix: str = PREFIX, port_base: int = PORT_BASE) -> contextlib.AbstractContextManager[None]:
    """The lab driver pointed at a benchmark fleet (never the test lab's), restored afterwards.

    Each prefix has its own inventory and known_hosts, so the smoke test's fleet never touches
    a fleet kept for measuring.
    """
    suffix = prefix.removeprefix("hostprep-")
    return lab.fleet(prefix=prefix, port_base=port_base, inventory=lab.REPO / "inventories" / f"{suffix}.yml",
                     known_hosts=lab.STATE / f"known_hosts.{suffix}", services="airflow-worker")


def down(log: Log = print, prefix: str = PREFIX, port_base: int = PORT_BASE) -> None:
    with bench_fleet(prefix, port_base):
        lab.down(log)


# ---------------------------------------------------------------- measuring

def sshd_counts(hosts: list[lab.LabHost]) -> dict[str, tuple[int, int]]:
    """Per host: (connections accepted, exec sessions started) in sshd's log so far."""
    counts = {}
    for h in hosts:
        log = lab.docker("logs", h.container, check=False).stderr.decode(errors="replace")
        counts[h.name] = (log.count("Accepted publickey"), len(re.findall(r"Starting session: command", log)))
    return counts


# ---------------------------------------------------------------- the tools

def _inventory_files(hosts: list[lab.LabHost], tmp: Path) -> dict[str, Path]:
    """The same hosts for each tool: YAML for hostprep, INI for Ansible, a Python file for pyinfra."""
    key, known = str(lab.KEY), str(lab.KNOWN_HOSTS)
    ini = ["[bench]"] + [f"{h.name} ansible_host=127.0.0.1 ansible_port={h.port}" for h in hosts]
    ini += ["[bench:vars]", "ansible_user=ubuntu", f"ansible_ssh_private_key_file={key}",
            f"ansible_ssh_common_args='-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes'"]
    py = [f"hosts = [", *[f"    ({h.name!r}, {{'ssh_hostname': '127.0.0.1', 'ssh_port': {h.port}, 'ssh_user': 'ubuntu', "
                          f"'ssh_key': {key!r}, 'ssh_known_hosts_file': {known!r}, "
                          f"'ssh_strict_host_key_checking': 'yes'}})," for h in hosts], "]"]
    yml = ["all:", "  vars:", "    ansible_user: ubuntu", f"    ansible_ssh_private_key_file: {key}",
           f"    hostprep_known_hosts_file: {known}", "  hosts:"]
    yml += [f"    {h.name}: {{ansible_host: 127.0.0.1, ansible_port: {h.port}}}" for h in hosts]
    files = {"ini": tmp / "bench.ini", "py": tmp / "bench_inventory.py", "yml": tmp / "bench.yml"}
    files["ini"].write_text("\n".join(ini) + "\n")
    files["py"].write_text("\n".join(py) + "\n")
    files["yml"].write_text("\n".join(yml) + "\n")
    return files


COLD, WARM = "cold", "warm"  # Ansible's ControlPath: fresh each run, or kept (masters persist between runs)


def commands_for(n: int, inv: dict[str, Path], tmp: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each measured configuration: argv and environment. Ansible's ControlPath is set per run (``timed``)."""
    env = tool_env()
    # ansible-core's own `minimal` callback (the ad-hoc default): each host's result whole, to check the audit
    # was done (complete.py), at a cost like the default's; `json` is ansible.posix's, which ansible-core lacks
    ansible_env = dict(env, ANSIBLE_PIPELINING="True", ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_FORKS=str(max(50, n)),
                       ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
                       ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"))
    raw = ["ansible-playbook", "-i", str(inv["ini"]), str(HERE / "audit_raw.yml"), "-f", str(max(50, n)),
           "-e", json.dumps({"peer_script": PEER_SCRIPT})]
    warm_env = dict(ansible_env, ANSIBLE_SSH_ARGS="-C -o ControlMaster=auto -o ControlPersist=30m")
    return {
        # hostprep at its default parallelism (32 hosts at a time): past that, 2 cores shared with
        # the hosts only thrash (measured at N=100: forks 100 costs ~30% more CPU and is no faster)
        "hostprep": ([sys.executable, "-m", "hostprep", "audit", "--inventory", str(inv["yml"]), "--json"],
                     dict(env, HOSTPREP_STATE_DIR=str(tmp / "hostprep-state"))),
        # the like-for-like row: --deep runs `id` and `docker ps` inside each worker, as the peers' script does
        # (hostprep's default audit judges from the host side only, with no exec in the worker)
        "hostprep-deep": ([sys.executable, "-m", "hostprep", "audit", "--inventory", str(inv["yml"]), "--json",
                           "--deep"], dict(env, HOSTPREP_STATE_DIR=str(tmp / "hostprep-state"))),
        "ansible-raw": (raw, ansible_env),
        "ansible-raw-warm": (raw, warm_env),
        "ansible-tasks": (["ansible-playbook", "-i", str(inv["ini"]), str(HERE / "audit.yml"), "-f", str(max(50, n))],
                          ansible_env),
        # -vvv: pyinfra prints each host's output only then (without it a run shows no result at all)
        "pyinfra": (["pyinfra", str(inv["py"]), "exec", "--sudo", "-y", "-vvv", "--parallel", str(max(50, n)),
                     "--", PEER_SCRIPT], env),
    }


@dataclass
class Result:
    """Samples per tool at one fleet size. Only samples whose audit was complete on every host count
    (and, with ``refuse_loaded``, only those taken on a quiet machine); the others say why not."""

    n: int
    cores: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    refuse_loaded: bool = False
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    sessions: dict[str, tuple[float, float]] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    last: dict[str, Sample] = field(default_factory=dict)
    loads: list[Load] = field(default_factory=list)

    def valid(self, tool: str) -> bool:
        return bool(self.samples.get(tool))

    def median(self, tool: str, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples[tool]) if self.valid(tool) else float("nan")

    def loaded(self, tool: str) -> int:
        """How many of the tool's counted samples were taken on a busy machine."""
        return sum(s.load.above(self.cores) for s in self.samples.get(tool, []))

    def add(self, s: Sample, gaps: list[str]) -> str:
        """Count a sample, or record why not (``gaps``: hosts whose audit it did not show); the log's note."""
        self.samples.setdefault(s.tool, [])
        self.last[s.tool] = s
        self.loads.append(s.load)
        why = ""
        if gaps:
            why = f"audit incomplete on {len(gaps)} hosts ({', '.join(gaps[:5])})"
            why += f"; {protocol.hint(s.output)}" if protocol.hint(s.output) else ""
        elif self.refuse_loaded and s.load.above(self.cores):
            why = f"taken on a busy machine ({s.load})"
        if not why:
            self.samples[s.tool].append(s)
            return f"  LOADED ({s.load})" if s.load.above(self.cores) else ""
        self.invalid[s.tool] = self.invalid.get(s.tool, 0) + 1
        self.reasons.setdefault(s.tool, []).append(why)
        return f"  NOT COUNTED: {why}"

    def check(self) -> None:
        """Stop the benchmark (``protocol.NoSample``) at the first tool whose row counted no sample."""
        for tool, counted in self.samples.items():
            if not counted:
                raise protocol.NoSample(protocol.why_not_counted(
                    tool, self.n, self.reasons.get(tool, []), self.last[tool].output if tool in self.last else ""))


def run_audits(hosts: list[lab.LabHost], repeats: int, log: Log, refuse_loaded: bool = False,
               skip: tuple[str, ...] = ()) -> Result:
    """Each tool ``repeats`` times on the same hosts, interleaved; ssh sessions counted on the first round.
    ``skip``: configurations not run (e.g. ansible-tasks, the slow typical playbook, at N=100)."""
    result = Result(len(hosts), refuse_loaded=refuse_loaded)
    with tempfile.TemporaryDirectory(prefix="hostprep-bench-") as t:
        tmp = Path(t)
        inv = _inventory_files(hosts, tmp)
        cmds = {k: v for k, v in commands_for(len(hosts), inv, tmp).items() if k not in skip}
        runs = iter(range(10**6))

        warm = tmp / "cp-warm"

        def timed(name: str, argv: list[str], env: dict[str, str]) -> Sample:
            """Ansible cold: a fresh ControlPath dir, its masters stopped afterwards; warm: one dir for every run."""
            if not name.startswith("ansible"):
                return measure(name, len(hosts), argv, env)
            if name.endswith("-warm"):
                return measure(name, len(hosts), argv, dict(env, ANSIBLE_SSH_CONTROL_PATH_DIR=str(warm)))
            cp = tmp / f"cp{next(runs)}"
            try:
                return measure(name, len(hosts), argv, dict(env, ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp)))
            finally:
                subprocess.run(["pkill", "-f", str(cp)], check=False)

        try:
            _rounds(hosts, repeats, cmds, timed, result, log)
        finally:
            subprocess.run(["pkill", "-f", str(warm)], check=False)
    result.check()
    return result


def _rounds(hosts: list[lab.LabHost], repeats: int, cmds: dict[str, tuple[list[str], dict[str, str]]],
            timed: Callable[[str, list[str], dict[str, str]], Sample], result: Result, log: Log) -> None:
    """A warm-up run of each tool (page cache, pyc files, warm masters), then ``repeats`` interleaved rounds.
    A warm-up that shows a missing plugin or collection stops the benchmark there (``protocol.hint``)."""
    names = [h.name for h in hosts]
    for name, (argv, env) in cmds.items():
        s = timed(name, argv, env)
        if complete.missing(name, s.output, names) and protocol.hint(s.output):
            raise protocol.NoSample(protocol.why_not_counted(name, len(hosts), [protocol.hint(s.output)], s.output))
    for rnd in range(repeats):
        for name, (argv, env) in cmds.items():
            before = sshd_counts(hosts) if rnd == 0 else None
            s = timed(name, argv, env)
            if before is not None:
                after = sshd_counts(hosts)
                conns = [after[h][0] - before[h][0] for h in after]
                execs = [after[h][1] - before[h][1] for h in after]
                result.sessions[name] = (statistics.mean(conns), statistics.mean(execs))
            gaps = complete.missing(name, s.output, names)
            note = result.add(s, gaps)
            log(f"  n={len(hosts)} {name:<16} round {rnd + 1}: {s.wall:6.2f}s wall {s.cpu:6.2f}s cpu "
                f"{s.peak_mb:6.0f} MB exit {s.exit_code} {s.load}{note}")
            if gaps:
                log(f"    {name} output: " + s.output[-800:])


def table(results: list[Result]) -> str:
    """The benchmark's table: per N and tool, medians and ratios to hostprep."""
    rows = ["| N | tool | wall (median) | × hostprep | controller CPU | CPU/host | peak memory | ssh conns/host | "
            "execs/host | samples counted | of them loaded |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        base = r.median("hostprep", "wall")
        for tool in r.samples:
            wall, cpu, mem = r.median(tool, "wall"), r.median(tool, "cpu"), r.median(tool, "peak_mb")
            conns, execs = r.sessions.get(tool, (float("nan"), float("nan")))
            counted = f"{len(r.samples[tool])}/{len(r.samples[tool]) + r.invalid.get(tool, 0)}"
            rows.append(f"| {r.n} | {tool} | {wall:.2f} s | {wall / base:.1f}× | {cpu:.2f} s | "
                        f"{cpu / r.n * 1000:.0f} ms | {mem:.0f} MB | {conns:.1f} | {execs:.1f} | {counted} | {r.loaded(tool)} |")
    return "\n".join(rows)


PEERS = {"ansible": ("ansible-raw", "ansible-tasks"), "pyinfra": ("pyinfra",)}


def strongest(results: list[Result]) -> str:
    """Each peer's ratio against its strongest (fastest counted) configuration, cold; Ansible warm too; for
    hostprep's default audit and for hostprep-deep (the same in-worker checks as the peers' script)."""
    return "\n".join(_strongest(r, ours) for ours in ("hostprep", "hostprep-deep") for r in results if r.valid(ours))


def _strongest(r: Result, ours: str) -> str:
    base = r.median(ours, "wall")
    parts = []
    for peer, tools in PEERS.items():
        counted = [t for t in tools if r.valid(t)]
        if not counted:
            parts.append(f"{peer}: no counted sample")
            continue
        best = min(counted, key=lambda t: r.median(t, "wall"))
        parts.append(f"{peer} at its strongest ({best}) {r.median(best, 'wall'):.2f} s = "
                     f"{r.median(best, 'wall') / base:.1f}×")
    if r.valid("ansible-raw-warm"):
        parts.append(f"ansible with warm ControlPersist masters {r.median('ansible-raw-warm', 'wall'):.2f} s = "
                     f"{r.median('ansible-raw-warm', 'wall') / base:.1f}×")
    return f"N={r.n}: {ours} {base:.2f} s; " + "; ".join(parts)


def growth(results: list[Result]) -> str:
    """How cost grows with N: a least-squares line through each tool's medians (fixed + per host)."""
    if len(results) < 2:
        return ""
    rows = ["| tool | wall per added host | controller CPU per added host | the fit's CPU at N=0 |", "|---|---|---|---|"]
    for tool in [t for t in results[0].samples if all(r.valid(t) for r in results)]:
        ns = [r.n for r in results]
        wall = _fit(ns, [r.median(tool, "wall") for r in results])
        cpu = _fit(ns, [r.median(tool, "cpu") for r in results])
        rows.append(f"| {tool} | {wall[1] * 1000:.0f} ms | {cpu[1] * 1000:.1f} ms | {cpu[0]:.2f} s |")
    return "\n".join(rows)


def _fit(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line."""
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


PHASES = ("connect", "facts", "compose", "proof")


def provision_overhead(hosts: list[lab.LabHost], log: Log) -> str:
    """`invoke provision` on the fleet, then rollback: wall vs the hosts' own compose seconds, by phase."""
    with tempfile.TemporaryDirectory(prefix="hostprep-bench-prov-") as t:
        tmp = Path(t)
        inv = _inventory_files(hosts, tmp)["yml"]
        env = tool_env(HOSTPREP_STATE_DIR=str(tmp / "state"))
        s = measure("provision", len(hosts), [sys.executable, "-m", "invoke", "provision", "--inventory", str(inv),
                                              "--json", "--no-smoke"], env)
        data = json.loads(s.output[s.output.index("{"):])
        reports = list(data["hosts"].values())
        measure("rollback", len(hosts), [sys.executable, "-m", "invoke", "rollback", "--inventory", str(inv)], env)
    changed = sum(r["status"] == "changed" for r in reports)
    tm = [r["timings"] for r in reports]
    compose = [x.get("compose", 0.0) for x in tm]
    totals = [x.get("total", 0.0) for x in tm]
    above = [t - c for t, c in zip(totals, compose)]
    phases = {p: statistics.median(x.get(p, 0.0) for x in tm) for p in PHASES}
    # what the apply exec spent besides compose and the proof: lock, drift check, snapshot, file writes, record
    phases["apply bookkeeping"] = statistics.median(
        x.get("apply", 0.0) - x.get("compose", 0.0) - x.get("proof", 0.0) for x in tm)
    lines = [
        f"provision on {len(hosts)} hosts: {changed} changed, wall {s.wall:.2f} s, controller CPU {s.cpu:.2f} s",
        f"  per host (median): total {statistics.median(totals):.2f} s, of which docker compose "
        f"{statistics.median(compose):.2f} s; hostprep's own time above compose "
        f"{statistics.median(above):.2f} s = {statistics.median(a / t for a, t in zip(above, totals)) * 100:.0f}% "
        f"of the host's total",
        "  per host phases (median): " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()),
        f"  fleet: wall {s.wall:.2f} s vs the longest host's compose {max(compose):.2f} s "
        f"(above: {(s.wall - max(compose)) / s.wall * 100:.0f}% of the wall)",
    ]
    return "\n".join(lines)


def startup_row(repeats: int, log: Log, refuse_loaded: bool = False) -> startup.Startup:
    """Each tool at N=0 (``startup``), measured before the bench's hosts start and load the machine."""
    with tempfile.TemporaryDirectory(prefix="hostprep-bench-0-") as t:
        tmp = Path(t)
        return startup.run(commands_for(0, _inventory_files([], tmp), tmp), repeats, log, refuse_loaded)


CONFIGURATIONS = ("hostprep", "hostprep-deep", "ansible-raw", "ansible-raw-warm", "ansible-tasks", "pyinfra")
STRONGEST = ("ansible-raw", "ansible-raw-warm", "pyinfra")   # never skipped: the ratios are read against them


def skippable(names: str) -> tuple[str, ...]:
    """``--skip a,b``: configurations left out; hostprep and each peer's strongest are never."""
    got = tuple(n for n in names.split(",") if n)
    bad = [n for n in got if n not in CONFIGURATIONS or n.startswith("hostprep") or n in STRONGEST]
    if bad:
        raise SystemExit(f"--skip {','.join(bad)}: only the typical configuration (ansible-tasks) may be skipped")
    return got


def main(sizes: list[int], repeats: int = 5, keep: bool = False, log: Log = print, *,
         prefix: str = PREFIX, port_base: int = PORT_BASE, refuse_loaded: bool = False,
         skip: tuple[str, ...] = ()) -> str:
    """The whole benchmark; its report opens with the run's load verdict (``protocol.verdict``).
    ``refuse_loaded``: samples taken on a busy machine are not counted (by default they are marked)."""
    for tool in ("ansible-playbook", "pyinfra"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: pip install -e '.[bench]'")
    first = startup_row(repeats, log, refuse_loaded)
    results: list[Result] = []
    report = [first.table()]
    biggest = max(sizes)
    started = time.monotonic()
    with bench_fleet(prefix, port_base):
        fleet = lab.up(biggest, log=lambda m: None, workers=8)
        log(f"{biggest} bench hosts up in {time.monotonic() - started:.1f}s")
        try:
            for n in sorted(sizes):
                results.append(run_audits(fleet[:n], repeats, log, refuse_loaded, skip))
            report.append(table(results))
            report.append(strongest(results))
            report.append(growth(results))
            report.append(provision_overhead(fleet, log))
        finally:
            if not keep:
                lab.down(log=lambda m: None)
    loads = first.loads + [x for r in results for x in r.loads]
    return "\n\n".join([protocol.verdict(loads, first.cores), *(r for r in report if r)])
