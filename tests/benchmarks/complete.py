"""Did a tool really do the whole audit on every host? Judged from each tool's per-host results.

All three tools exit non-zero on drift or on a failed check, so an exit code says nothing about
whether the audit ran: an earlier benchmark timed Ansible failing at its first task on hosts
without python3. A sample counts only if every host's results hold each part of the audit:
the docker group line, the socket's mode and owner, ``id`` inside the worker and ``docker ps``
inside the worker (its answer, or its refusal). Pure: output text in, hosts missing out.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

PARTS = {
    "docker group": re.compile(r"docker:x:[0-9]+:"),
    "socket stat": re.compile(r"^[0-7]{3,4} \S+ \S+\s*$", re.M),
    "worker id": re.compile(r"uid=[0-9]+"),
    "worker docker ps": re.compile(r"CONTAINER ID|permission denied|Cannot connect to the Docker daemon"),
}


def audit_done(text: str) -> bool:
    """Every part of the audit is in one host's output."""
    return all(rule.search(text) for rule in PARTS.values())


def _json_tail(output: str) -> dict[str, Any]:
    """The JSON object a tool printed (tools may print warnings before it); {} if there is none."""
    start = re.search(r"^\{", output, re.M)
    try:
        data = json.loads(output[start.start():]) if start else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def hostprep_missing(output: str, hosts: Iterable[str], deep: bool = False) -> list[str]:
    """hostprep's ``audit --json``: every host audited (ok or drift), none unreachable or failed; with
    ``deep`` (``audit --deep``), each host's report says the in-worker checks ran (``"deep": true``)."""
    seen = _json_tail(output).get("hosts") or {}
    return [h for h in hosts if (seen.get(h) or {}).get("status") not in ("ok", "drift")
            or (deep and (seen.get(h) or {}).get("deep") is not True)]


# ansible-core's `minimal` callback: one block per host and task, opened by `HOST | STATUS | rc=N >>` (raw and
# command tasks) or `HOST | STATUS! => {...}`; the block runs to the next opening line.
ANSIBLE_RESULT = re.compile(r"^(\S+) \| (SUCCESS|CHANGED|FAILED|UNREACHABLE|SKIPPED)!?(?= |$)", re.M)


def ansible_missing(output: str, hosts: Iterable[str]) -> list[str]:
    """ansible-playbook with the ``minimal`` callback: no failed or unreachable result, each part in the results."""
    opens = list(ANSIBLE_RESULT.finditer(output))
    texts: dict[str, list[str]] = {}
    bad: set[str] = set()
    for m, nxt in zip(opens, [*opens[1:], None]):
        texts.setdefault(m.group(1), []).append(output[m.end():nxt.start() if nxt else len(output)])
        if m.group(2).startswith(("FAILED", "UNREACHABLE")):
            bad.add(m.group(1))
    return [h for h in hosts if h in bad or not audit_done("\n".join(texts.get(h, [])))]


def pyinfra_missing(output: str, hosts: Iterable[str]) -> list[str]:
    """``pyinfra exec -vvv`` prints each host's output lines as ``[host] line``.

    Names are padded to the longest (``[lab1]  line`` beside ``[lab10] line``), and ``>>>`` lines
    echo the command sent, not its output.
    """
    lines: dict[str, list[str]] = {}
    for m in re.finditer(r"^\[([^\]]+)\] +(?!>>> )(.*)$", output, re.M):
        lines.setdefault(m.group(1), []).append(m.group(2))
    return [h for h in hosts if not audit_done("\n".join(lines.get(h, [])))]


def missing(tool: str, output: str, hosts: Iterable[str]) -> list[str]:
    """Hosts on which ``tool``'s run did not do the whole audit."""
    if tool.startswith("hostprep"):
        return hostprep_missing(output, list(hosts), deep=tool == "hostprep-deep")
    judge = pyinfra_missing if tool == "pyinfra" else ansible_missing
    return judge(output, list(hosts))
