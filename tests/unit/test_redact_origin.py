"""Issue 23, finding 8: redaction masks values by their origin and shape, never host names or hostprep's
own words. Hosts named like credentials (``badkey``, ``token-1``, ``passau``, ``secretary``, and
``api_key``, which is credential-shaped) go through every output: the recap, host reports and their
errors (the host-key-changed one included), JSON, the audit's table, JSON and JUnit, the progress
line, the CLI's edge. Their names and hostprep's messages show whole; secrets beside them do not.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import paramiko
import pytest

from hostprep.audit import report as audit_report
from hostprep.cli import audit_cmd, commands, render, tasks as cli
from hostprep.audit.run import FAILED as AUDIT_FAILED, HostAudit
from hostprep.ssh.endpoint import Endpoint
from hostprep.redact import MASK, credential_name, for_terminal, redact
from hostprep.change.results import CHANGED, FAILED, UNREACHABLE, FleetReport, HostReport
from hostprep.ssh.config import refusal
from hostprep.change.verify import Check

NAMES = ["badkey", "token-1", "passau", "secretary"]
SECRET = "Zq7-hunter2"
AT = datetime(2026, 12, 7, tzinfo=timezone.utc)
_KEY = paramiko.RSAKey.generate(1024)


def host_key_changed(name: str) -> str:
    """The error a connect to ``name`` gives when its host key changed (hostprep's own words)."""
    exc = paramiko.BadHostKeyException("[127.0.0.1]:2702", _KEY, _KEY)
    error = refusal(Endpoint(name, "127.0.0.1", 2702, known_hosts="/tmp/kh"), 2702, exc)
    assert error is not None
    return str(error)


def fleet(names: list[str]) -> FleetReport:
    """One unreachable host (its key changed), one failed with a host's error quoting a secret, the
    rest changed with checks whose details came from the host."""
    reports = []
    for i, name in enumerate(names):
        if i % 3 == 0:
            reports.append(HostReport(name).fail(host_key_changed(name), UNREACHABLE))
        elif i % 3 == 1:
            reports.append(HostReport(name).fail(f"{name}: apply failed (exit 1): compose said "
                                                 f"POSTGRES_PASSWORD={SECRET} is invalid"))
        else:
            reports.append(HostReport(name, CHANGED, changed=1, checks=[
                Check("the worker reaches Docker", True, f"{name}: docker ps ok; API_TOKEN: {SECRET}")]))
    return FleetReport(reports, seconds=1.0)


def every_output(names: list[str]) -> str:
    f = fleet(names)
    audits = [HostAudit(r.host, AUDIT_FAILED if r.status == FAILED else "unreachable", error=r.error)
              for r in f.reports]
    reply = commands.show_fleet(f, as_json=False)
    shown = [cli._shown(line, reply.own) for line in reply.lines]
    shown += [cli._shown(line, reply.own) for line in commands.show_fleet(f, as_json=True).lines]
    shown += [render.progress_line(r, i + 1, len(names), False) for i, r in enumerate(f.reports)]
    for as_json in (False, True):   # the audit's table and JSON, as the CLI prints them
        table = audit_cmd._audit_outputs(audits, AT, audit_cmd.AuditOutputs(as_json=as_json))
        shown += [cli._shown(line, table.own) for line in table.lines]
    shown += [audit_report.as_json(audits, AT), audit_report.junit(audits, AT)]   # the report files
    return "\n".join(shown)


@pytest.mark.parametrize("name", NAMES)
def test_a_host_named_like_a_credential_shows_its_name_and_its_host_key_error_whole(name: str) -> None:
    error = host_key_changed(name)
    assert error.startswith(f"{name}: HOST KEY CHANGED for [127.0.0.1]:2702")
    out = every_output([name, "lab-x", "lab-y"])
    assert f"{name} : ok=0" in out   # the recap
    assert f"error: {error}" in out and f"({error})" in out   # the report and the progress line
    assert f"== {name}: unreachable: {error}" in out   # the audit table
    assert f'"error": "{error}"' in out and f"<testsuite name=\"{name}\"" in out   # JSON and JUnit
    assert MASK not in error and SECRET not in out


def test_all_four_names_at_once_show_whole_in_every_output_and_secrets_beside_them_do_not() -> None:
    out = every_output(NAMES)
    assert SECRET not in out and "POSTGRES_PASSWORD=" + MASK in out and "API_TOKEN: " + MASK in out
    for name in NAMES:
        assert re.search(rf"^{re.escape(name)} +: ok=[0-9]", out, re.M) and f"== {name}: " in out
        assert f"{name}: " + MASK not in out
    for line in out.split("\n"):
        assert not re.search(rf"({'|'.join(map(re.escape, NAMES))}) *: {re.escape(MASK)}", line), line


def test_a_host_whose_name_is_credential_shaped_is_still_never_masked_as_hostprep_names_it() -> None:
    assert credential_name("api_key")
    out = every_output(["api_key", "token-1", "passau"])
    assert "api_key : ok=0" in out and "api_key: HOST KEY CHANGED" in out and SECRET not in out


@pytest.mark.parametrize("line", [
    "badkey : ok=1  changed=0", "token-1: HOST KEY CHANGED for [127.0.0.1]:2702", "passau: snapshot x: ok",
    "secretary: apply failed (exit 1)", "[1/4] badkey: failed (badkey: refused)",
    "status ok: 3 hosts",
])
def test_hostprep_words_before_a_colon_are_not_read_as_credentials(line: str) -> None:
    assert redact(line) == line and for_terminal(line) == line


@pytest.mark.parametrize("line, shown", [
    (f"AIRFLOW__CORE__FERNET_KEY={SECRET}", f"AIRFLOW__CORE__FERNET_KEY={MASK}"),
    (f"  x-auth-token: {SECRET}", f"  x-auth-token: {MASK}"),
    (f"PGPASS={SECRET}", f"PGPASS={MASK}"),
    (f"API_TOKEN_2={SECRET}", f"API_TOKEN_2={MASK}"),
    (f'{{"dbPassword": "{SECRET}"}}', f'{{"dbPassword": "{MASK}"}}'),
    (f"error: A=1\rDB_PASSWORD={SECRET}", f"error: A=1\rDB_PASSWORD={MASK}"),
    (f"A=1\x85MYSQL_PWD={SECRET} x", f"A=1\x85MYSQL_PWD={MASK}"),
])
def test_credential_shaped_variables_in_host_text_are_masked_whatever_breaks_the_line(line: str, shown: str) -> None:
    assert redact(line) == shown


def test_redaction_keeps_lines_at_newlines_only_and_a_carriage_return_hides_nothing_on_a_terminal() -> None:
    text = f"ok\rTOKEN={SECRET}\u2028B=2\nC=3\n"
    once = redact(text)
    assert once.split("\n") == [f"ok\rTOKEN={MASK}\u2028B=2", "C=3", ""]
    assert SECRET not in for_terminal(text) and "\\x0d" in for_terminal(text)
