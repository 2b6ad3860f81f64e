"""Redaction: credentials never leave hostprep in output (diffs, --check, --json, reports, history). Pure.

A value is masked because of where it came from and its shape, never because of hostprep's own
words: text a host or a file wrote (a ``.env`` diff, a task log, an error's tail) has the value of
every credential-shaped variable masked (``NAME=value``, ``NAME: value``, ``"name": "value"``, where
the name's last word is a credential word: ``_AIRFLOW_WWW_USER_PASSWORD``, ``API_TOKEN``,
``PGPASS``, ``X-Auth-Token``, ``dbPassword``), plus URI passwords, bearer tokens and private-key
blocks. Host names and the rest of hostprep's text are not: ``badkey``, ``token-1``, ``passau`` and
``secretary`` are names, not credentials; names the caller knows are its own (``own``: the hosts
of a run) never count as a credential's name. Snapshots keep the real bytes (root-only on the host,
0600 on the controller).

Every pattern runs in linear time (possessive quantifiers, one pass): a host's 1 MB line must not
hang the CLI (``tests/benchmarks/redact_speed.py``).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Collection

MASK = "********"
_WORDS = frozenset("pass passwd password passphrase pwd secret secrets token tokens key keys credential credentials "
                   "creds auth private cookie salt signature".split())
_COMPOUNDS = frozenset("apikey accesskey secretkey privatekey authtoken accesstoken refreshtoken pgpass dbpass "
                       "mysqlpwd".split())
_UPPER_TAIL = re.compile("(?:" + "|".join(sorted((w.upper() for w in _WORDS), key=len, reverse=True)) + ")$")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# A name that may be a credential's: it holds a credential word somewhere (checked exactly by credential_name)
_MAYBE = "(?=[A-Za-z0-9_.-]*?(?i:pass|pwd|secret|token|key|cred|auth|private|cookie|salt|signature))"

# KEY=value / KEY: value / - KEY=value / +KEY=value (a diff line) / export KEY=value / "KEY": "value", a whole line
_ASSIGN = re.compile(r"""(?P<head>\s*+[-+]?+\s*+(?:export\s++)?+["']?+(?P<name>[A-Za-z_][A-Za-z0-9_.-]*+)["']?+"""
                     r"""\s*+[=:]\s*+)(?P<value>\S(?:.*\S)?)\s*$""")
# The same inside a line: ?password=x&, {"password":"x"}, token: x; a value up to the next delimiter or
# JSON escape (\n, \"). The name is only looked at where it may be a credential's (_MAYBE, in C).
_INLINE = re.compile(r"""(?<![A-Za-z0-9_.-])""" + _MAYBE +
                     r"""(?P<name>[A-Za-z0-9_.-]++)["']?+\s*+(?:=|:(?=[\s"']))\s*+["']?+""")
_VALUE = re.compile(r"""(?:[^\s&;,"'}\])\\]|\\(?![nrt"\\/u]))++""")
_URI = re.compile(r"""(?<![^\s'"])[^\s'"]*?://[^\s'"]*+""")
_BEARER = re.compile(r"(?P<head>\b(?:Bearer|Basic|Token)\s++)(?P<pw>[A-Za-z0-9._~+/=-]{8,}+)", re.I)
_HINTS = ("pass", "pwd", "secret", "token", "key", "cred", "auth", "private", "cookie", "salt", "signature",
          "://", "-----begin", "bearer", "basic")
_HINT = re.compile("|".join(re.escape(h) for h in _HINTS), re.I)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*?(?:PRIVATE KEY|CERTIFICATE REQUEST)[A-Z0-9 ]*+-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*+-----")
# "\n" ends a line (hostdata.lines); what else str.splitlines breaks at only ends a value, so a \r or
# \x85 never carries a secret past the assignment that a terminal would show on a fresh line.
_BREAKS = re.compile("([\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+|\n)")


@functools.lru_cache(maxsize=4096)
def credential_name(name: str) -> bool:
    """Whether a variable's or key's name says its value is a credential: its last word (trailing
    ``_2`` numbers aside) is a credential word, or an ALL-CAPS word ending in one (``PGPASS``).

    >>> [n for n in ("_AIRFLOW_WWW_USER_PASSWORD", "API_TOKEN_2", "PGPASS", "x-auth-token", "dbPassword",
    ...              "apikey", "badkey", "token-1", "passau", "secretary", "PASSWORD_FILE") if credential_name(n)]
    ['_AIRFLOW_WWW_USER_PASSWORD', 'API_TOKEN_2', 'PGPASS', 'x-auth-token', 'dbPassword', 'apikey']
    """
    last = name.strip("\"'").rsplit("-", 1)[-1]
    parts = [p for p in re.split(r"[_.]+", last) if p]
    if "-" not in name:
        while len(parts) > 1 and parts[-1].isdigit():
            parts.pop()
    if not parts:
        return False
    word = parts[-1]
    camel = _CAMEL.findall(word)
    return (word.lower() in _COMPOUNDS or (bool(camel) and camel[-1].lower() in _WORDS)
            or (word.isupper() and _UPPER_TAIL.search(word) is not None))


def _mask_uris(line: str) -> str:
    """scheme://user:password@host: everything between the user's ':' and the LAST '@' of the token
    (a raw '@' or '/' in a password is common); a long colon-less user part is a token (https://TOKEN@host)."""
    def one(m: re.Match[str]) -> str:
        token = m.group(0)
        i, at = token.find("://"), token.rfind("@")
        if at > i:
            colon = token.find(":", i + 3, at)
            user = token[i + 3:at]
            if colon >= 0:
                return token[:colon + 1] + MASK + token[at:]
            if len(user) >= 16 and "/" not in user:
                return token[:i + 3] + MASK + token[at:]
        return token
    return _URI.sub(one, line) if "://" in line else line


def _mask_inline(line: str, own: Collection[str] = ()) -> str:
    """Mask credentials anywhere in a line: URI passwords, bearer tokens, NAME=value pairs. One pass:
    a name that is not a credential's is stepped over, and its value is read as text again (so
    "error: PASSWORD=x" still finds PASSWORD)."""
    line = _BEARER.sub(lambda u: u.group("head") + MASK, _mask_uris(line))
    out, pos, at = [], 0, 0
    while (m := _INLINE.search(line, at)) is not None:
        at = m.end()
        name = m.group("name")
        if not credential_name(name) or name in own:
            continue
        v = _VALUE.match(line, at)
        if v is not None and v.group(0) != MASK:
            out += [line[pos:at], MASK]
            pos = at = v.end()
    return "".join(out) + line[pos:]


def _secret_assignment(line: str, own: Collection[str]) -> re.Match[str] | None:
    m = _ASSIGN.match(line)
    return m if m and credential_name(m.group("name")) and m.group("name") not in own else None


def redact_line(line: str, own: Collection[str] = ()) -> str:
    """One line with credential values masked; names in ``own`` are never a credential's.

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
    >>> redact_line("badkey: HOST KEY CHANGED for [127.0.0.1]:2702"), redact_line("api_key : ok=1", own={"api_key"})
    ('badkey: HOST KEY CHANGED for [127.0.0.1]:2702', 'api_key : ok=1')
    """
    m = _secret_assignment(line, own)
    return m.group("head") + MASK if m else _mask_inline(line, own)


def _block(body: str, m: re.Match[str] | None) -> tuple[str, re.Pattern[str] | None] | None:
    """For a line that opens a multi-line secret (a PEM private key, or a credential's quoted value
    left open; ``m`` its credential assignment), its masked form and what ends the block (None: it
    ends on this line); else None. The masked form opens nothing, so masking twice changes nothing."""
    head = m.group("head") if m else None
    pem = _PEM_BEGIN.search(body) if "-----BEGIN " in body else None
    if pem:
        return (head or body[:pem.start()]) + MASK, None if _PEM_END.search(body, pem.end()) else _PEM_END
    value = m.group("value") if m else ""
    if value[:1] in ("\"", "'") and value.count(value[0]) % 2 == 1:
        return f"{head}{MASK}", re.compile(re.escape(value[0]))
    return None


def _hinted(text: str) -> bool:
    """Whether ``text`` may hold a credential at all (C-speed substring scans): most text does not."""
    low = text.lower()
    return any(w in low for w in _HINTS)


def redact(text: str, own: Collection[str] = ()) -> str:
    """Text a host or a file wrote, with every line through :func:`redact_line` (line ends kept).

    The lines of a quoted multi-line secret (``KEY="...`` up to the closing quote) and of a PEM
    private key block are masked whole. Lines end at ``"\\n"``; a ``\\r`` or ``\\x85`` inside one
    starts a fresh assignment but never joins or splits lines.

    >>> redact("A=1\\rDB_PASSWORD=x y\\x85B=2\\n")
    'A=1\\rDB_PASSWORD=********\\x85B=2\\n'
    """
    if not _hinted(text):
        return text
    out: list[str] = []
    until: re.Pattern[str] | None = None
    parts = _BREAKS.split(text)
    for i in range(0, len(parts), 2):
        body, end = parts[i], parts[i + 1] if i + 1 < len(parts) else ""
        if until is not None:
            out += [MASK if body else "", end]
            if until.search(body):
                until = None
            continue
        if not _HINT.search(body):
            out += [body, end]
            continue
        m = _secret_assignment(body, own)
        block = _block(body, m)
        if block is not None:
            out += [block[0], end]
            until = block[1]
            continue
        out += [m.group("head") + MASK if m else _mask_inline(body, own), end]
    return "".join(out)


def redact_data(data: Any, own: Collection[str] = ()) -> Any:
    """A JSON-ready structure with every string value through :func:`redact` (keys are hostprep's own)."""
    if isinstance(data, str):
        return redact(data, own)
    if isinstance(data, dict):
        return {k: redact_data(v, own) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v, own) for v in data]
    return data


# Every control character but a newline and a tab, except the colour codes hostprep itself prints:
# a host's text must not move the cursor, rewrite a line (\r), set the title or the clipboard (OSC).
_COLOUR = re.compile(r"(\x1b\[[0-9;]*+m)")
_SHOWN = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0))}


def clean(text: str) -> str:
    r"""Text with foreign control characters shown as ``\xNN`` (hostprep's colour codes kept).

    >>> clean("error: x\r[ok] all good\x1b]0;owned\x07 \x1b[31mred\x1b[0m")
    'error: x\\x0d[ok] all good\\x1b]0;owned\\x07 \x1b[31mred\x1b[0m'
    """
    if "\x1b" not in text:
        return text.translate(_SHOWN)
    parts = _COLOUR.split(text)
    return "".join(p if i % 2 else p.translate(_SHOWN) for i, p in enumerate(parts))


def for_terminal(text: str, own: Collection[str] = ()) -> str:
    r"""Text as the CLI prints it: credentials masked, foreign control characters shown as ``\xNN``.

    >>> for_terminal("error: x\r[ok] all good\x1b]0;owned\x07 TOKEN=t")
    'error: x\\x0d[ok] all good\\x1b]0;owned\\x07 TOKEN=********'
    """
    return redact(clean(text), own)
