"""Run the audit on a schedule on the controller: a marked crontab block, or systemd user units.

The crontab text is edited by pure functions (``with_block``, ``without_block``,
``find_block``) between two marker comments, so the user's own entries are
never touched; ``read_crontab`` / ``write_crontab`` are the only I/O, through
``crontab -l`` / ``crontab -``.

>>> cron_spec("15m"), cron_spec("1h"), cron_spec("1d")
('*/15 * * * *', '0 * * * *', '0 0 * * *')
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hostprep.audit.report import REPORT_FILES

BEGIN = "# >>> hostprep audit schedule"
END = "# <<< hostprep audit schedule"
UNIT = "hostprep-audit"
LOG_FILE = "audit.log"
_EVERY = re.compile(r"([0-9]{1,2})([mhd])")   # ASCII digits, at most 2: never a 4,301-digit int()


class ScheduleError(ValueError):
    """The schedule cannot be installed or removed as asked; nothing was changed."""


def _every(every: str) -> tuple[int, str]:
    m = _EVERY.fullmatch(every.strip()) if isinstance(every, str) else None
    n, unit = (int(m.group(1)), m.group(2)) if m else (0, "")
    ok = (unit == "m" and 0 < n < 60 and 60 % n == 0) or (unit == "h" and 0 < n < 24 and 24 % n == 0) \
        or (unit == "d" and n == 1)
    if not ok:
        shown = every if not isinstance(every, str) or len(every) <= 40 else every[:37] + "..."
        raise ScheduleError(f"--every {shown!r}: use minutes dividing 60 (1m 5m 15m 30m), "
                            "hours dividing 24 (1h 2h 6h 12h) or 1d")
    return n, unit


def seconds(every: str) -> int:
    """``--every`` in seconds.

    >>> seconds("15m"), seconds("6h"), seconds("1d")
    (900, 21600, 86400)
    """
    n, unit = _every(every)
    return n * {"m": 60, "h": 3600, "d": 86400}[unit]


def cron_spec(every: str) -> str:
    """The five cron time fields for ``--every`` (``1m`` is for tests; daily runs at 00:00)."""
    n, unit = _every(every)
    if unit == "m":
        return "* * * * *" if n == 1 else f"*/{n} * * * *"
    if unit == "h":
        return "0 * * * *" if n == 1 else f"0 */{n} * * *"
    return "0 0 * * *"


def on_calendar(every: str) -> str:
    """The systemd ``OnCalendar=`` for ``--every``."""
    n, unit = _every(every)
    if unit == "m":
        return "*-*-* *:*:00" if n == 1 else f"*-*-* *:00/{n}:00"
    if unit == "h":
        return "hourly" if n == 1 else f"*-*-* 00/{n}:00:00"
    return "daily"


@dataclass(frozen=True)
class AuditJob:
    """What the scheduled run executes: absolute paths only (cron has no venv, no cwd, a bare PATH)."""

    repo: str
    python: str
    report_dir: str
    inventory: str
    host: str | None = None
    group: str | None = None
    limit: str | None = None
    deep: bool = False
    state_dir: str | None = None
    flock: str | None = None
    every: str | None = None   # the schedule's period, passed on so the textfile says it (audit --every)

    def argv(self) -> list[str]:
        args = [self.python, "-m", "hostprep", "audit", "--inventory", self.inventory, "--report-dir", self.report_dir]
        for flag, value in (("--host", self.host), ("--group", self.group), ("--limit", self.limit)):
            if value:
                args += [flag, value]
        return args + (["--deep"] if self.deep else []) + (["--every", self.every] if self.every else [])

    def command(self) -> str:
        """One shell line: cd to the repo, run the audit, last run's output in audit.log.

        With flock, a run still going when the next one is due makes the next one a no-op
        (the redirection sits inside the lock, so a skipped run does not truncate the log).
        """
        q = shlex.quote
        env = ["env", f"HOSTPREP_STATE_DIR={self.state_dir}"] if self.state_dir else []
        inner = (f"cd {q(self.repo)} && exec {' '.join(q(w) for w in env + self.argv())} "
                 f">{q(self.report_dir + '/' + LOG_FILE)} 2>&1")
        if self.flock:
            inner = f"{q(self.flock)} -n {q(self.report_dir + '/.hostprep-audit.lock')} sh -c {q(inner)}"
        return f"mkdir -p {q(self.report_dir)} && {inner}"


def block(every: str, job: AuditJob) -> str:
    """hostprep's crontab block: markers around one entry (``%`` escaped, as cron requires)."""
    line = f"{cron_spec(every)} {job.command().replace('%', chr(92) + '%')}"
    return (f"{BEGIN} (every {every}; `invoke audit.unschedule` removes this block)\n"
            f"# reports: {', '.join(REPORT_FILES.values())} and {LOG_FILE} in {job.report_dir}\n"
            f"{line}\n{END}\n")


def _lines(text: str) -> list[str]:
    r"""The crontab's lines, each with its "\n": split at "\n" only (a user's line may hold \r, \x1c or \x85,
    and ``splitlines`` would cut it there, and could read a marker in its middle).

    >>> _lines("a\x1c# >>> hostprep\nb")
    ['a\x1c# >>> hostprep\n', 'b']
    """
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _spans(text: str) -> list[tuple[int, int]]:
    """(first, last) line index of each hostprep block; unbalanced markers are an error."""
    spans, start = [], None
    for i, line in enumerate(_lines(text)):
        if line.startswith(BEGIN):
            if start is not None:
                raise ScheduleError(f"crontab line {i + 1}: a second '{BEGIN}' before '{END}'; fix it with `crontab -e`")
            start = i
        elif line.startswith(END):
            if start is None:
                raise ScheduleError(f"crontab line {i + 1}: '{END}' without its begin marker; fix it with `crontab -e`")
            spans.append((start, i))
            start = None
    if start is not None:
        raise ScheduleError(f"crontab line {start + 1}: '{BEGIN}' without its end marker; fix it with `crontab -e`")
    return spans


def find_block(text: str) -> str | None:
    """hostprep's block in a crontab, or None."""
    lines = _lines(text)
    spans = _spans(text)
    return "".join(lines[spans[0][0]:spans[0][1] + 1]) if spans else None


def without_block(text: str) -> str:
    """The crontab with hostprep's block(s) removed and every other line kept byte for byte."""
    lines = _lines(text)
    drop = {i for a, b in _spans(text) for i in range(a, b + 1)}
    return "".join(ln for i, ln in enumerate(lines) if i not in drop)


def with_block(text: str, new_block: str) -> str:
    """The crontab with hostprep's block replaced in place, or appended."""
    spans = _spans(text)
    lines = _lines(text)
    if spans:
        a, b = spans[0]
        return "".join(lines[:a]) + new_block + without_block("".join(lines[b + 1:]))
    if text and not text.endswith("\n"):
        text += "\n"
    return text + new_block


def read_crontab() -> str:
    """The current user's crontab ("" when there is none)."""
    try:
        proc = subprocess.run(["crontab", "-l"], capture_output=True, text=True, timeout=30, encoding="utf-8",
                              errors="surrogateescape")   # any bytes in a user's entry go back as they were
    except FileNotFoundError:
        raise ScheduleError("`crontab` is not installed (Debian/Ubuntu: apt-get install cron)") from None
    if proc.returncode != 0:
        if "no crontab for" in proc.stderr:
            return ""
        raise ScheduleError(f"crontab -l failed: {proc.stderr.strip()}")
    return proc.stdout


def write_crontab(text: str) -> None:
    proc = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True, timeout=30, encoding="utf-8",
                          errors="surrogateescape")
    if proc.returncode != 0:
        raise ScheduleError(f"crontab - refused the new crontab: {proc.stderr.strip()}")


def install(every: str, job: AuditJob) -> str:
    """Install (or replace) hostprep's crontab block; returns it."""
    new = block(every, job)
    write_crontab(with_block(read_crontab(), new))
    return new


def remove() -> str | None:
    """Remove hostprep's block, leaving every other entry; returns what was removed."""
    current = read_crontab()
    found = find_block(current)
    if found is not None:
        write_crontab(without_block(current))
    return found


# ------------------------------------------------------------------ systemd (user units)


def units(every: str, job: AuditJob) -> dict[str, str]:
    """A oneshot service and its timer; drift (exit 2) leaves the service "failed", like a cron mail."""
    quoted = (job.state_dir or "").replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    env = f'Environment="HOSTPREP_STATE_DIR={quoted}"\n' if job.state_dir else ""
    exec_start = " ".join(shlex.quote(a) for a in job.argv()).replace("%", "%%")
    service = (f"[Unit]\nDescription=hostprep drift audit\n\n[Service]\nType=oneshot\n"
               f"WorkingDirectory={job.repo}\n{env}ExecStart={exec_start}\n")
    timer = (f"[Unit]\nDescription=hostprep drift audit every {every}\n\n[Timer]\nOnCalendar={on_calendar(every)}\n"
             f"Persistent=true\n\n[Install]\nWantedBy=timers.target\n")
    return {f"{UNIT}.service": service, f"{UNIT}.timer": timer}


def systemd_is_pid1() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


def install_units(every: str, job: AuditJob, unit_dir: Path) -> tuple[list[Path], bool]:
    """Write the units; enable the timer only when systemd runs this machine. Returns (files, enabled)."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in units(every, job).items():
        (unit_dir / name).write_text(text)
        paths.append(unit_dir / name)
    enabled = systemd_is_pid1()
    if enabled:
        subprocess.run(["systemctl", "--user", "daemon-reload"], check=True, timeout=60)
        subprocess.run(["systemctl", "--user", "enable", "--now", f"{UNIT}.timer"], check=True, timeout=60)
    return paths, enabled


def remove_units(unit_dir: Path) -> list[Path]:
    if systemd_is_pid1():
        subprocess.run(["systemctl", "--user", "disable", "--now", f"{UNIT}.timer"], check=False, timeout=60)
    removed = []
    for name in (f"{UNIT}.service", f"{UNIT}.timer"):
        if (unit_dir / name).exists():
            (unit_dir / name).unlink()
            removed.append(unit_dir / name)
    return removed


def default_unit_dir() -> Path:
    return Path.home() / ".config" / "systemd" / "user"
