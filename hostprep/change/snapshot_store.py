"""Where snapshots are kept: the controller's copies, the host's (read by one exec), and the controller's history
of changes. Every snapshot read from either place passes :func:`hostprep.change.snapshots.check` first.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hostprep.hostdata import lines, loads
from hostprep.layout import SNAPSHOT_DIR
from hostprep.change.local_state import append_private, host_dir, write_private
from hostprep.inventory.settings import HostSettings
from hostprep.ssh.transport import Transport
from hostprep.change.snapshots import SNAPSHOT_ID, SnapshotRefused, check


_READ_ONE = ('cd "$D" 2>/dev/null || exit 0; if [ -n "$ID" ]; then f="$ID.json"; '
             'else f=$(ls -1 *.json 2>/dev/null | sort | tail -n1); fi; [ -f "$f" ] && cat "$f"')
_READ_ALL = 'cd "$D" 2>/dev/null || exit 0; for f in $(ls -1 *.json 2>/dev/null | sort); do cat "$f"; echo; done'


def save_local(snap: dict[str, Any]) -> Path:
    """Store a snapshot (already :func:`check`ed) as a 0600 file in 0700 directories."""
    sid = snap.get("id")
    if not isinstance(sid, str) or not SNAPSHOT_ID.fullmatch(sid):
        raise SnapshotRefused(f"snapshot id {str(sid)[:60]!r} is not a hostprep snapshot id")
    path = host_dir(snap["host"]) / "snapshots" / f"{sid}.json"
    return write_private(path, json.dumps(snap, indent=1, sort_keys=True))


def list_local(host: str) -> list[dict[str, Any]]:
    """The controller's snapshots of a host, oldest first (files that are not one are skipped)."""
    folder = host_dir(host) / "snapshots"
    out = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(check(loads(p.read_bytes(), str(p)), host))
        except (ValueError, OSError):
            continue
    return out


def discard_local(host: str, snap_id: str) -> None:
    """Forget a snapshot whose change never started (its apply stopped before storing it on the host)."""
    if SNAPSHOT_ID.fullmatch(snap_id):
        (host_dir(host) / "snapshots" / f"{snap_id}.json").unlink(missing_ok=True)


def load_local(host: str, snap_id: str | None = None) -> dict[str, Any] | None:
    snaps = list_local(host)
    if snap_id is None:
        return snaps[-1] if snaps else None
    return next((s for s in snaps if s["id"] == snap_id), None)


def find(t: Transport, snap_id: str | None, settings: HostSettings) -> dict[str, Any] | None:
    """A snapshot (the latest, or ``snap_id``): the controller's copy, else the host's (kept here too).
    Either is checked against the host's settings: its paths (bind folders too) are ones hostprep manages."""
    local = load_local(t.endpoint.name, snap_id)
    return check(local, t.endpoint.name, settings) if local is not None else fetch_remote(t, snap_id, settings)


def fetch_remote(t: Transport, snap_id: str | None, settings: HostSettings) -> dict[str, Any] | None:
    """Read a snapshot (the latest, or ``snap_id``) from the host's own store, and keep it here too.

    What the host sends is :func:`check`ed before it touches the controller's disk.
    """
    host = t.endpoint.name
    if snap_id is not None and not SNAPSHOT_ID.fullmatch(snap_id):
        raise SnapshotRefused(f"{host}: {snap_id[:60]!r} is not a snapshot id")
    res = t.run_script(_READ_ONE, {"D": SNAPSHOT_DIR, "ID": snap_id or ""}, sudo=True)
    if not res.stdout.strip():
        return None
    try:
        data = loads(res.stdout, "snapshot")
    except ValueError as exc:
        raise SnapshotRefused(f"{host}: snapshot refused: not JSON ({str(exc)[:80]})") from None
    snap = check(data, host, settings)
    if snap_id is not None and snap["id"] != snap_id:
        raise SnapshotRefused(f"{host}: snapshot refused: asked for {snap_id}, got {snap['id']}")
    save_local(snap)
    return snap


def list_remote(t: Transport) -> list[dict[str, Any]]:
    """Snapshots stored on the host (id, strategy, created, steps), oldest first; what is not one is skipped."""
    res = t.run_script(_READ_ALL, {"D": SNAPSHOT_DIR}, sudo=True)
    out = []
    for line in lines(res.stdout):
        try:
            s = check(loads(line, "snapshot"), t.endpoint.name) if line.strip() else None
        except ValueError:
            continue
        if s is not None:
            out.append({k: s.get(k) for k in ("id", "created", "strategy", "steps", "host")})
    return out


def encode(data: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(data, sort_keys=True).encode()).decode()


def append_history(host: str, event: dict[str, Any]) -> None:
    """Append one provision/rollback event to the controller's per-host history (JSON lines, 0600)."""
    append_private(host_dir(host) / "history.jsonl", json.dumps(event, sort_keys=True) + "\n")
