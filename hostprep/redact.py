"""Redaction: credentials never leave hostprep in output (diffs, --check, --json, reports, history). Pure.

Snapshots keep the real bytes (root-only on the host, 0600 on the controller); everything
shown is passed through :func:`redact` first.
"""

from __future__ import annotations

import re

MASK = "********"
# Names that hold a credential: _AIRFLOW_WWW_USER_PASSWORD, AIRFLOW__CORE__FERNET_KEY, API_TOKEN, ...
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|KEY|CREDENTIAL|AUTH", re.I)
# KEY=value / KEY: value / - KEY=value / export KEY=value / "KEY": "value", on one line.
_ASSIGN = re.compile(r"""^(?P<head>\s*(?:-\s*)?(?:export\s+)?["']?(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*[=:]\s*)"""
                     r"""(?P<value>\S.*?)\s*$""")
# scheme://user:password@host - the password part
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)(?P<pw>[^\s@/'\"]+)(?=@)")


def redact_line(line: str) -> str:
    """One line with credential values masked.

    >>> redact_line("_AIRFLOW_WWW_USER_PASSWORD=s3cret")
    '_AIRFLOW_WWW_USER_PASSWORD=********'
    >>> redact_line("SQL_CONN=postgresql://airflow:pw@db/airflow")
    'SQL_CONN=postgresql://airflow:********@db/airflow'
    >>> redact_line("AIRFLOW_UID=50000")
    'AIRFLOW_UID=50000'
    """
    m = _ASSIGN.match(line)
    if m and SECRET_NAME.search(m.group("name")):
        return m.group("head") + MASK
    return _URI_PASSWORD.sub(lambda u: u.group("head") + MASK, line)


def redact(text: str) -> str:
    """Every line of ``text`` through :func:`redact_line` (line ends kept)."""
    return "".join(redact_line(ln[:-1]) + "\n" if ln.endswith("\n") else redact_line(ln)
                   for ln in text.splitlines(keepends=True))
