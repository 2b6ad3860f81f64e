"""Snapshots: what a host looked like before hostprep changed it, and how to put it back.

A snapshot is taken from facts (pure) before any write, stored on the host
(root-only, /var/lib/hostprep/snapshots) and on the controller. Restoring is
a pure translation of the snapshot into actions for the host interpreter, hostprep's
record on the host (state.json) included.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hostprep import __version__
from hostprep.facts import Facts, from_bytes, to_bytes
from hostprep.layout import SNAPSHOT_DIR, STATE_DIR, STATE_FILE, bind_path, path_in
from hostprep.steps import Action, Plan
from hostprep.transport import Transport

__all__ = ["STATE_DIR", "STATE_FILE", "new_id", "controller_dir", "take", "restore_actions", "restore_plan",
           "record", "state_action", "fingerprint", "differences", "save_local", "list_local", "load_local",
           "fetch_remote", "list_remote", "encode", "append_history"]

_READ_ONE = ('cd "$D" 2>/dev/null || exit 0; if [ -n "$ID" ]; then f="$ID.json"; '
             'else f=$(ls -1 *.json 2>/dev/null | sort | tail -n1); fi; [ -f "$f" ] && cat "$f"')
_READ_ALL = 'cd "$D" 2>/dev/null || exit 0; for f in $(ls -1 *.json 2>/dev/null | sort); do cat "$f"; echo; done'


def new_id(now: datetime | None = None) -> str:
    """Sortable, unique snapshot id, e.g. ``20261125T173000Z-3f9a``."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def controller_dir() -> Path:
    """Local state directory (HOSTPREP_STATE_DIR, default ~/.local/state/hostprep)."""
    return Path(os.environ.get("HOSTPREP_STATE_DIR") or Path.home() / ".local/state/hostprep")


def take(facts: Facts, plan: Plan, snap_id: str) -> dict[str, Any]:
    """The snapshot of everything ``plan`` is about to touch. Pure."""
    files: dict[str, Any] = {}
    dirs: dict[str, Any] = {}
    by_path = {path_in(facts.project_dir, f.name): f for f in facts.files.values()}
    bind = {bind_path(facts.project_dir, d.name): d for d in facts.bind_dirs}
    for action in plan.actions:
        path = action.args[0] if action.args else ""
        if action.op in ("write", "delete"):
            f = by_path.get(path)
            files[path] = ({"existed": True, "content_b64": base64.b64encode(to_bytes(f.content)).decode(),
                            "mode": f.mode, "uid": f.uid, "gid": f.gid} if f and f.exists else {"existed": False})
        elif action.op in ("mkdir", "chown") and path in bind:
            d = bind[path]
            dirs[path] = {"existed": d.exists, "uid": d.uid, "gid": d.gid, "mode": d.mode}
    builds = any(a.op == "compose-build" for a in plan.actions)
    return {
        "id": snap_id,
        "host": facts.host,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostprep_version": __version__,
        "strategy": plan.strategy,
        "services": list(plan.services),
        "recreated": any(a.op == "compose-up" for a in plan.actions),
        "socket": {"path": facts.socket.path, "mode": facts.socket.mode, "uid": facts.socket.uid, "gid": facts.socket.gid},
        "files": files,
        "dirs": dirs,
        "image": {"ref": facts.worker.image, "id": facts.worker.image_id} if builds else None,
        "record": facts.record,
        "steps": [s.name for s in plan.steps],
        "facts": facts.to_dict(),
    }


def restore_actions(snap: dict[str, Any]) -> tuple[list[Action], list[str]]:
    """(actions, contents) that put the host back as the snapshot saw it. Pure."""
    actions: list[Action] = []
    sock = snap["socket"]
    if sock.get("mode") is not None:
        actions.append(Action("chmod", (sock["path"], format(sock["mode"], "o"))))
        actions.append(Action("chown", (sock["path"], str(sock["uid"]), str(sock["gid"]))))
    for path, f in sorted(snap["files"].items()):
        if f["existed"]:
            content = from_bytes(base64.b64decode(f["content_b64"]))
            actions.append(Action("write", (path, str(f["uid"]), str(f["gid"]), format(f["mode"], "o")), content))
        else:
            actions.append(Action("delete", (path,)))
    for path, d in sorted(snap["dirs"].items()):
        if d["existed"]:
            actions.append(Action("chown", (path, str(d["uid"]), str(d["gid"]))))
            actions.append(Action("chmod", (path, format(d["mode"], "o"))))
        else:
            actions.append(Action("rmdir", (path,)))
    image = snap.get("image")
    if image and image.get("id") and image.get("ref"):
        actions.append(Action("tag", (image["id"], image["ref"])))
    if snap.get("recreated") or image:
        actions.append(Action("compose-up", tuple(snap["services"])))
    return actions, [a.content or "" for a in actions if a.op == "write"]


def record(plan: Plan, snap_id: str, docker_gid: int | None, at: str) -> dict[str, Any]:
    """hostprep's record of what it applied (written to the host's state.json with the change)."""
    return {"strategy": plan.strategy, "snapshot_id": snap_id, "docker_gid": docker_gid,
            "services": list(plan.services), "applied_at": at, "hostprep_version": __version__}


def state_action(rec: dict[str, Any] | None) -> Action:
    """The action that writes hostprep's record on the host (None: removes it)."""
    if rec is None:
        return Action("delete", (STATE_FILE,))
    return Action("write", (STATE_FILE, "0", "0", "600"), json.dumps(rec, sort_keys=True))


def restore_plan(snap: dict[str, Any]) -> list[Action]:
    """Everything a snapshot puts back, hostprep's own record on the host included."""
    actions, _ = restore_actions(snap)
    return [*actions, state_action(snap.get("record"))]


def fingerprint(facts: dict[str, Any]) -> dict[str, Any]:
    """The parts of facts a rollback must bring back exactly (no pids, no container names)."""
    w = facts["worker"]
    return {
        "docker_gid": facts["docker_gid"],
        "socket": {"mode": None if facts["socket"]["mode"] is None else format(facts["socket"]["mode"], "o"),
                   **{k: facts["socket"][k] for k in ("uid", "gid", "has_acl")}},
        "files": {n: f.get("sha256") for n, f in facts["files"].items()},
        "bind_dirs": [tuple(sorted(d.items())) for d in facts["bind_dirs"]],
        "worker": {k: (list(w[k]) if isinstance(w[k], (list, tuple)) else w[k])
                   for k in ("user", "group_add", "proc_uid", "proc_gid", "proc_groups", "id_output",
                             "docker_ps_rc", "image_id", "state")},
        "record": facts["record"],
    }


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Human-readable keys where two fingerprints differ."""
    out = []
    for key in before:
        if isinstance(before[key], dict):
            out += [f"{key}.{k}: {before[key].get(k)!r} -> {after[key].get(k)!r}"
                    for k in before[key] if before[key].get(k) != after[key].get(k)]
        elif before[key] != after.get(key):
            out.append(f"{key}: {before[key]!r} -> {after.get(key)!r}")
    return out


def save_local(snap: dict[str, Any]) -> Path:
    path = controller_dir() / "hosts" / snap["host"] / "snapshots" / f"{snap['id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snap, indent=1, sort_keys=True))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def list_local(host: str) -> list[dict[str, Any]]:
    """The controller's snapshots of a host, oldest first."""
    folder = controller_dir() / "hosts" / host / "snapshots"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def load_local(host: str, snap_id: str | None = None) -> dict[str, Any] | None:
    snaps = list_local(host)
    if snap_id is None:
        return snaps[-1] if snaps else None
    return next((s for s in snaps if s["id"] == snap_id), None)


def fetch_remote(t: Transport, snap_id: str | None) -> dict[str, Any] | None:
    """Read a snapshot (the latest, or ``snap_id``) from the host's own store, and keep it here too."""
    res = t.run_script(_READ_ONE, {"D": SNAPSHOT_DIR, "ID": snap_id or ""}, sudo=True)
    if not res.stdout.strip():
        return None
    snap: dict[str, Any] = json.loads(res.stdout)
    save_local(snap)
    return snap


def list_remote(t: Transport) -> list[dict[str, Any]]:
    """Snapshots stored on the host (id, strategy, created, steps), oldest first."""
    res = t.run_script(_READ_ALL, {"D": SNAPSHOT_DIR}, sudo=True)
    out = []
    for line in res.stdout.splitlines():
        if line.strip():
            s = json.loads(line)
            out.append({k: s.get(k) for k in ("id", "created", "strategy", "steps", "host")})
    return out


def encode(data: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(data, sort_keys=True).encode()).decode()


def append_history(host: str, event: dict[str, Any]) -> None:
    """Append one provision/rollback event to the controller's per-host history (JSON lines)."""
    path = controller_dir() / "hosts" / host / "history.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with path.open("a") as fh:
        fh.write(json.dumps(event, sort_keys=True) + "\n")
