"""Redaction: credentials never leave hostprep in output (diffs, --check, --json, reports, history). Pure.

Snapshots keep the real bytes (root-only on the host, 0600 on the controller); everything
shown is passed through :func:`redact` first, and the CLI passes every line and every JSON
string through it once more at the edge (:func:`redact_data`), so text a host sends back in an
error message is masked too. Masking errs on the side of hiding: a user name or a port may go.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "********"
# Names that hold a credential: _AIRFLOW_WWW_USER_PASSWORD, AIRFLOW__CORE__FERNET_KEY, API_TOKEN, PGPASS,
# MYSQL_PWD, AWS_SECRET_ACCESS_KEY, AIRFLOW__API_AUTH__JWT_SECRET, a private key, a cookie, a salt ...
SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|CREDENTIAL|CREDS|AUTH|PRIVATE|COOKIE|SALT|SIGNATURE", re.I)
# KEY=value / KEY: value / - KEY=value / +KEY=value (a diff line) / export KEY=value / "KEY": "value", on one line.
_ASSIGN = re.compile(r"""^(?P<head>\s*[-+]?\s*(?:export\s+)?["']?(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*[=:]\s*)"""
                     r"""(?P<value>\S(?:.*\S)?)\s*$""")
# The same inside a line: ?password=x&, {"password":"x"}, token: x; a value up to the next delimiter or
# JSON escape (\n, \"). Every pattern here runs in linear time: a host's 1 MB line must not hang the CLI.
_INLINE = re.compile(r"""(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]+)["']?\s*(?:=|:(?=[\s"']))\s*["']?"""
                     r"""(?P<value>(?:[^\s&;,"'}\])\\]|\\(?![nrt"\\/u]))+)""")
_TOKEN_SPLIT = re.compile(r"([\s'\"]+)")
_BEARER = re.compile(r"(?P<head>\b(?:Bearer|Basic|Token)\s+)(?P<pw>[A-Za-z0-9._~+/=-]{8,})", re.I)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*(?:PRIVATE KEY|CERTIFICATE REQUEST)[A-Z0-9 ]*-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*-----")


def _mask_uris(line: str) -> str:
    """scheme://user:password@host: everything between the user's ':' and the LAST '@' of the token
    (a raw '@' or '/' in a password is common); a long colon-less user part is a token (https://TOKEN@host)."""
    out = []
    for token in _TOKEN_SPLIT.split(line):
        i, at = token.find("://"), token.rfind("@")
        if i >= 0 and at > i:
            colon = token.find(":", i + 3, at)
            user = token[i + 3:at]
            if colon >= 0:
                token = token[:colon + 1] + MASK + token[at:]
            elif len(user) >= 16 and "/" not in user:
                token = token[:i + 3] + MASK + token[at:]
        out.append(token)
    return "".join(out)


def _mask_inline(line: str) -> str:
    """Mask credentials anywhere in a line: URI passwords, bearer tokens, NAME=value pairs."""
    line = _BEARER.sub(lambda u: u.group("head") + MASK, _mask_uris(line))
    out, pos = [], 0
    while (m := _INLINE.search(line, pos)) is not None:
        if SECRET_NAME.search(m.group("name")) and m.group("value") != MASK:
            out += [line[pos:m.start("value")], MASK]
            pos = m.end()
        else:   # not a credential: go on after its name, so "error: PASSWORD=x" still finds PASSWORD
            out.append(line[pos:m.end("name")])
            pos = m.end("name")
    return "".join(out) + line[pos:]


def redact_line(line: str) -> str:
    """One line with credential values masked.

    >>> redact_line("_AIRFLOW_WWW_USER_PASSWORD=s3cret")
    '_AIRFLOW_WWW_USER_PASSWORD=********'
    >>> redact_line("SQL_CONN=postgresql://airflow:pw@db/airflow")
    'SQL_CONN=postgresql://airflow:********@db/airflow'
    >>> redact_line("BROKER=redis://:p@ss/w0rd@redis:6379/0")
    'BROKER=redis://:********@redis:6379/0'
    >>> redact_line("DSN=postgresql://db/airflow?user=a&password=pw")
    'DSN=postgresql://db/airflow?user=a&password=********'
    >>> redact_line("AIRFLOW_UID=50000")
    'AIRFLOW_UID=50000'
    """
    m = _ASSIGN.match(line)
    if m and SECRET_NAME.search(m.group("name")):
        return m.group("head") + MASK
    return _mask_inline(line)


def _block(body: str) -> tuple[str, re.Pattern[str] | None] | None:
    """For a line that opens a multi-line secret (a PEM private key, or a credential's quoted value
    left open), its masked form and what ends the block (None: it ends on this line); else None.
    The masked form opens nothing, so masking twice (the CLI's edge masks again) changes nothing."""
    m = _ASSIGN.match(body)
    head = m.group("head") if m and SECRET_NAME.search(m.group("name")) else None
    pem = _PEM_BEGIN.search(body)
    if pem:
        return (head or body[:pem.start()]) + MASK, None if _PEM_END.search(body, pem.end()) else _PEM_END
    value = m.group("value") if m and head else ""
    if value[:1] in ("\"", "'") and value.count(value[0]) % 2 == 1:
        return f"{head}{MASK}", re.compile(re.escape(value[0]))
    return None


_LINE_ENDS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"   # what str.splitlines splits at


def redact(text: str) -> str:
    """Every line of ``text`` through :func:`redact_line` (line ends kept).

    The lines of a quoted multi-line secret (``KEY="...`` up to the closing quote) and of a
    PEM private key block are masked whole.
    """
    out: list[str] = []
    until: re.Pattern[str] | None = None
    for ln in text.splitlines(keepends=True):
        body = ln.rstrip(_LINE_ENDS)
        end = ln[len(body):]
        if until is not None:
            out.append(MASK + end)
            if until.search(body):
                until = None
            continue
        block = _block(body)
        if block is not None:
            out.append(block[0] + end)
            until = block[1]
            continue
        out.append(redact_line(body) + end)
    return "".join(out)


def redact_data(data: Any) -> Any:
    """A JSON-ready structure with every string value through :func:`redact` (keys are hostprep's own)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {k: redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v) for v in data]
    return data


# Every control character but a newline and a tab, except the colour codes hostprep itself prints:
# a host's text must not move the cursor, rewrite a line (\r), set the title or the clipboard (OSC).
_CONTROL = re.compile(r"\x1b\[[0-9;]*m|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def for_terminal(text: str) -> str:
    r"""Text as the CLI prints it: credentials masked, foreign control characters shown as ``\xNN``.

    >>> for_terminal("error: x\r[ok] all good\x1b]0;owned\x07 TOKEN=t")
    'error: x\\x0d[ok] all good\\x1b]0;owned\\x07 TOKEN=********'
    """
    text = _CONTROL.sub(lambda m: m.group(0) if len(m.group(0)) > 1 else f"\\x{ord(m.group(0)):02x}", text)
    return redact(text)
