"""remote-tls's files on both hosts, planned from what the hosts have. Pure.

The task host gets the server key and certificates (root, 0600 in a 0700 folder) and the systemd
drop-in; the Airflow host the client key and certificates (root, group 0, 0640 in a 0750 folder: the
worker runs as AIRFLOW_UID with group 0). A plan is the folders and files that differ; its undo is
what the host had before, taken from the same facts (a file put back, a new one deleted, a new folder
removed if empty). Certificates still valid for 30 days and more from the fleet CA are kept as they are.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Mapping

from hostprep.change import certs
from hostprep.strategies.remote_tls import CA, CERT, CLIENT_DIR, DROPIN, DROPIN_DIR, KEY, SERVER_DIR, dropin_text
from hostprep.change.tls_host import FileState, Put, TlsFacts

RENEW_DAYS = 30
ETC = "/etc/hostprep"
TASK_DIRS = ((ETC, 0o755), (SERVER_DIR, 0o700), (DROPIN_DIR, 0o755))
AIRFLOW_DIRS = ((ETC, 0o755), (CLIENT_DIR, 0o750))
TASK_PATHS = (*(d for d, _ in TASK_DIRS), *(f"{SERVER_DIR}/{n}" for n in (CA, CERT, KEY)), DROPIN)
AIRFLOW_PATHS = (*(d for d, _ in AIRFLOW_DIRS), *(f"{CLIENT_DIR}/{n}" for n in (CA, CERT, KEY)))


@dataclass(frozen=True)
class FilePlan:
    """What one host gets: the change, its undo, the steps in words, and problems that block it."""

    host: str
    change: Put
    undo: Put
    steps: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.change.actions)

    def __repr__(self) -> str:
        return f"<FilePlan {self.host} steps={len(self.steps)} problems={len(self.problems)}>"


def file_text(f: FileState | None) -> str | None:
    """A regular file's content as text, None when it is missing, not a regular file or unread."""
    return f.content.decode(errors="replace") if f and f.kind == "file" and f.content is not None else None


def keep_or_issue(facts: TlsFacts, folder: str, ca: certs.CA, issue: Any, sans: list[str] | None = None,
                  *, renew_days: float = RENEW_DAYS) -> certs.Issued:
    """The certificate and key a host has, if the fleet CA issued it (for the same names) and it has
    RENEW_DAYS left; else a new one (``issue()``)."""
    have = [file_text(facts.files.get(f"{folder}/{n}")) for n in (CERT, KEY, CA)]
    cert, key, ca_pem = have
    if cert and key and ca_pem == ca.cert_pem and certs.verify_chain(cert, ca.cert_pem) is None:
        try:
            fresh = certs.days_left(cert) > renew_days and (sans is None or certs.sans_of(cert) == sans)
        except (certs.CertError, ValueError):
            fresh = False
        if fresh:
            return certs.Issued(cert, key, ca_pem)
    issued: certs.Issued = issue()
    return issued


def plan_files(facts: TlsFacts, dirs: tuple[tuple[str, int], ...], files: Mapping[str, tuple[bytes, int]],
               *, restart_if: tuple[str, ...] = ()) -> FilePlan:
    """Folders (made root's, with their modes) and files (content, mode; root:0) that differ from ``facts``,
    and their undo. dockerd restarts (with the change, and with the undo) when a path of ``restart_if`` changes."""
    problems = [f"refused: {p} is {f.kind} on the host (a link or not what hostprep expects); nothing was changed"
                for p, f in facts.files.items() if f.kind == "unsafe"]
    actions: list[tuple[str, str, str]] = []
    contents: list[bytes] = []
    undo_actions: list[tuple[str, str, str]] = []
    undo_contents: list[bytes] = []
    steps: list[str] = []
    made: list[str] = []
    for path, mode in dirs:
        f = facts.files.get(path)
        if f is not None and f.kind == "dir" and f.mode == mode and f.uid == 0 and f.gid == 0:
            continue
        if f is not None and f.kind not in ("dir", "missing", "unsafe"):
            problems.append(f"refused: {path} is a {f.kind}, not a folder; nothing was changed")
            continue
        actions.append(("mkdir", path, f"{mode:o}"))
        steps.append(f"{'create' if f is None or f.kind == 'missing' else 'chmod'} {path} root:0 {mode:o}")
        if f is None or f.kind == "missing":
            made.append(path)
        elif f.mode is not None:
            undo_actions.append(("mkdir", path, f"{f.mode:o}"))
    changed: list[str] = []
    for path, (content, mode) in files.items():
        f = facts.files.get(path)
        if f is not None and f.kind == "file" and f.content == content and f.mode == mode and f.uid == 0 and f.gid == 0:
            continue
        actions.append(("write", path, f"{mode:o}"))
        contents.append(content)
        steps.append(f"{'write' if f is None or f.kind == 'missing' else 'replace'} {path} root:0 {mode:o}")
        changed.append(path)
        if f is not None and f.kind == "file" and f.content is not None:
            undo_actions.append(("write", path, f"{(f.mode or 0o600):o}"))
            undo_contents.append(f.content)
        else:
            undo_actions.append(("delete", path, ""))
    undo_actions += [("rmdir", d, "") for d in reversed(made)]
    restart = any(p in restart_if for p in changed)
    if restart:
        steps.append("restart docker.service (once)")
    return FilePlan(facts.host, Put(tuple(actions), tuple(contents), restart),
                    Put(tuple(undo_actions), tuple(undo_contents), restart), tuple(steps), tuple(problems))


def task_files(issued: certs.Issued, exec_start: str, port: int) -> dict[str, tuple[bytes, int]]:
    """The task host's files: server key and certificates (0600) and the drop-in (0644)."""
    return {f"{SERVER_DIR}/{CA}": (issued.ca_pem.encode(), 0o600), f"{SERVER_DIR}/{CERT}": (issued.cert_pem.encode(), 0o600),
            f"{SERVER_DIR}/{KEY}": (issued.key_pem.encode(), 0o600), DROPIN: (dropin_text(exec_start, port).encode(), 0o644)}


def airflow_files(issued: certs.Issued) -> dict[str, tuple[bytes, int]]:
    """The Airflow host's client key and certificates: root, group 0, 0640 (the worker runs with group 0)."""
    return {f"{CLIENT_DIR}/{n}": (v.encode(), 0o640)
            for n, v in ((CA, issued.ca_pem), (CERT, issued.cert_pem), (KEY, issued.key_pem))}


def put_to_dict(p: Put) -> dict[str, Any]:
    """A Put as JSON (for the controller's record of the run)."""
    return {"actions": [list(a) for a in p.actions], "contents": [base64.b64encode(c).decode() for c in p.contents],
            "restart": p.restart, "wait_port": p.wait_port}


def put_from_dict(d: Mapping[str, Any], paths: tuple[str, ...]) -> Put:
    """The Put a record holds, refused (``ValueError``) unless every action is one of ours on ``paths``."""
    actions = tuple(tuple(a) for a in d.get("actions", []))
    if not all(len(a) == 3 and a[0] in ("mkdir", "write", "delete", "rmdir") and a[1] in paths and
               (a[2] == "" or a[2] in ("600", "640", "644", "700", "750", "755")) for a in actions):
        raise ValueError("the record's undo names a path or mode remote-tls does not manage")
    contents = tuple(base64.b64decode(c, validate=True) for c in d.get("contents", []))
    if len(contents) != sum(1 for a in actions if a[0] == "write"):
        raise ValueError("the record's undo has contents for another number of files")
    port = d.get("wait_port")
    return Put(actions, contents, bool(d.get("restart")), port if isinstance(port, int) else None)  # type: ignore[arg-type]
