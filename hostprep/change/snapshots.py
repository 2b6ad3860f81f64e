"""Snapshots: what a host looked like before hostprep changed it, and how to put it back.

A snapshot is taken from facts (pure) before any write, stored on the host
(root-only, /var/lib/hostprep/snapshots) and on the controller. Restoring is
a pure translation of the snapshot into actions for the host interpreter, hostprep's
record on the host (state.json) included.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import datetime, timezone
from typing import Any

from hostprep import __version__
from hostprep.host.facts import PROBED_FILES, Facts, from_bytes, to_bytes
from hostprep.host.probe import DOCKER_URL
from hostprep.change.leftovers import without_leftovers
from hostprep.layout import STATE_DIR, STATE_FILE, bind_path, path_in
from hostprep.change.local_state import controller_dir
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import SAFE_ARG, Action, Plan

__all__ = ["STATE_DIR", "STATE_FILE", "new_id", "controller_dir", "take", "restore_actions", "restore_plan",
           "record", "state_action", "fingerprint", "differences"]


SNAPSHOT_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4,32}")


class SnapshotRefused(ValueError):
    """A snapshot (from a host, or on the controller's disk) that is not what hostprep wrote."""


def new_id(now: datetime | None = None) -> str:
    """Sortable, unique snapshot id, e.g. ``20261125T173000Z-3f9a``."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


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
    builds = any(a.op in ("compose-build", "tag") for a in plan.actions)   # the image is replaced: keep its id
    return {
        "id": snap_id,
        "host": facts.host,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostprep_version": __version__,
        "strategy": plan.strategy,
        "services": list(plan.services),
        "recreated": any(a.op == "compose-up" for a in plan.actions),
        "kept_services": [x for x in plan.more_services if x not in plan.added_services],
        "added": {"services": list(plan.added_services), "networks": list(plan.added_networks),
                  "project": plan.project},
        "socket": {"path": facts.socket.path, "mode": facts.socket.mode, "uid": facts.socket.uid, "gid": facts.socket.gid},
        "files": files,
        "dirs": dirs,
        "image": {"ref": facts.worker.image, "id": facts.worker.image_id} if builds else None,
        "record": facts.record,
        "steps": [s.name for s in plan.steps],
        "facts": _facts_record(facts),
    }


def _facts_record(facts: Facts) -> dict[str, Any]:
    """The facts a snapshot keeps: Compose's leftovers from an interrupted recreate are no part of any service."""
    data = facts.to_dict()
    return {**data, "containers": without_leftovers(data.get("containers"))}


def restore_actions(snap: dict[str, Any]) -> tuple[list[Action], list[str]]:
    """(actions, contents) that put the host back as the snapshot saw it. Pure.

    Services the change added are removed first, while hostprep's override still defines them;
    networks it added go last, once the recreated services have left them.
    """
    added = snap.get("added") or {}
    actions: list[Action] = [Action("compose-rm", tuple(added["services"]))] if added.get("services") else []
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
        if d["existed"]:   # one the provision created is kept (see kept_dirs)
            actions.append(Action("chown", (path, str(d["uid"]), str(d["gid"]))))
            actions.append(Action("chmod", (path, format(d["mode"], "o"))))
    image = snap.get("image")
    if image and image.get("id") and image.get("ref"):
        actions.append(Action("tag", (image["id"], image["ref"])))
    if snap.get("recreated") or image:
        actions.append(Action("compose-up", (*snap.get("kept_services", ()), *snap["services"])))
    if added.get("networks") and added.get("project"):
        actions += [Action("network-rm", (added["project"], n)) for n in added["networks"]]
    return actions, [a.content or "" for a in actions if a.op == "write"]


def record(plan: Plan, snap_id: str, docker_gid: int | None, at: str) -> dict[str, Any]:
    """hostprep's record of what it applied (written to the host's state.json with the change)."""
    rec = {"strategy": plan.strategy, "snapshot_id": snap_id, "docker_gid": docker_gid,
           "services": list(plan.services), "applied_at": at, "hostprep_version": __version__}
    return {**rec, "switched_from": plan.switched_from} if plan.switched_from else rec


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
        **({"services": _service_view(facts["containers"])} if facts.get("containers") else {}),
    }


def _service_view(containers: list[dict[str, Any]]) -> dict[str, Any]:
    """Per Compose service, what Compose runs for it: what its containers mount, publish and get as DOCKER_HOST
    (ids change, these must not). Leftovers of an interrupted recreate are no part of it, and a service with a
    running container is judged by its running ones (a stopped copy beside them is not what it runs)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for c in sorted(without_leftovers(containers), key=lambda c: (str(c.get("service")), str(c.get("name")))):
        key = c.get("service") or c.get("name")
        mounts = sorted(f"{m['source']}:{m['target']}:{m['kind']}:{'ro' if m['read_only'] else 'rw'}" for m in c["mounts"])
        out.setdefault(str(key), []).append({"mounts": mounts, "published": list(c["published"]),
                                             "docker_host": c["docker_host"], "running": c["running"]})
    return {k: [v for v in views if v["running"]] or views for k, views in out.items()}


def kept_dirs(snap: dict[str, Any]) -> list[str]:
    """Bind folders the provision created: a rollback keeps them, since the services still mount them
    and removing one would only have Docker make it again at the recreate, owned by root."""
    made = {p for p, d in snap["dirs"].items() if not d["existed"]}
    return [d["name"] for d in snap["facts"]["bind_dirs"] if bind_path(snap["facts"]["project_dir"], d["name"]) in made]


def reachable(snap: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint a rollback of ``snap`` can reach: the snapshot's, with each kept bind folder as it
    is now if it is still a directory (``after``: the facts after the rollback)."""
    want = fingerprint(snap["facts"])
    kept, now = set(kept_dirs(snap)), {d["name"]: d for d in after["bind_dirs"]}
    want["bind_dirs"] = [tuple(sorted(now[d["name"]].items()))
                         if d["name"] in kept and now.get(d["name"], {}).get("exists") else tuple(sorted(d.items()))
                         for d in snap["facts"]["bind_dirs"]]
    return want


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Human-readable keys where two fingerprints differ."""
    out = []
    for key in before:
        if isinstance(before[key], dict):
            now = after.get(key) or {}
            out += [f"{key}.{k}: {before[key].get(k)!r} -> {now.get(k)!r}"
                    for k in sorted(set(before[key]) | set(now), key=str) if before[key].get(k) != now.get(k)]
        elif before[key] != after.get(key):
            out.append(f"{key}: {before[key]!r} -> {after.get(key)!r}")
    return out


def check(snap: Any, host: str, settings: HostSettings | None = None) -> dict[str, Any]:
    """``snap`` if it is a snapshot hostprep wrote for ``host``, else :class:`SnapshotRefused`.

    What a host sends is data: the id must be hostprep's (it names a file), the host the one
    asked, every field of the right type, and, given the host's settings, every path one
    hostprep itself would touch there (a file of the project, a bind folder, the socket, its
    record), so a forged snapshot can neither write elsewhere nor land in another host's store.
    """
    why = _shape_problem(snap, host) or (_path_problem(snap, settings) if settings is not None else None)
    base = snap.get("base") if why is None else None
    if base is not None:   # a switch's: the host before hostprep's first fix (hostprep.change.switch)
        if not isinstance(base, dict) or "base" in base:
            why = "its base must be one snapshot"
        else:
            try:
                check(base, host, settings)
            except SnapshotRefused as exc:
                why = f"its base: {str(exc).split('snapshot refused: ', 1)[-1]}"
    if why is None:
        why = _use_problem(snap)
    if why is not None:
        raise SnapshotRefused(f"{host}: snapshot refused: {why}")
    return dict(snap)


def _use_problem(snap: dict[str, Any]) -> str | None:
    """Every pure use a rollback or a switch makes of a snapshot, tried now, before anything on the host changes:
    its restore actions, and the fingerprint the host is judged by afterwards."""
    try:
        restore_actions(snap)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"it does not translate into safe actions ({str(exc)[:80]})"
    try:
        reachable(snap, snap["facts"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"its facts cannot judge a rollback ({type(exc).__name__}: {str(exc)[:80]})"
    return None


def _shape_problem(snap: Any, host: str) -> str | None:
    """What is wrong with the snapshot's id, host and field types, or None."""
    if not isinstance(snap, dict):
        return "not a JSON object"
    sid = snap.get("id")
    if not isinstance(sid, str) or not SNAPSHOT_ID.fullmatch(sid):
        return f"id {str(sid)[:60]!r} is not a hostprep snapshot id"
    if snap.get("host") != host:
        return f"it names host {str(snap.get('host'))[:60]!r}"
    if not isinstance(snap.get("strategy"), str) or not isinstance(snap.get("facts"), dict):
        return "strategy or facts missing"
    why = _facts_problem(snap["facts"])
    if why:
        return why
    services = snap.get("services")
    if not isinstance(services, list) or not all(isinstance(x, str) and SAFE_ARG.fullmatch(x) for x in services):
        return "services must be a list of service names"
    sock, files, dirs = snap.get("socket"), snap.get("files"), snap.get("dirs")
    if not isinstance(sock, dict) or not isinstance(files, dict) or not isinstance(dirs, dict):
        return "socket, files and dirs must be objects"
    if sock.get("mode") is not None and not all(_small_int(sock.get(k)) for k in ("mode", "uid", "gid")):
        return "socket mode, uid and gid must be numbers"
    for path, f in files.items():
        if not isinstance(f, dict) or not isinstance(f.get("existed"), bool) or (f["existed"] and not (
                all(_small_int(f.get(k)) for k in ("mode", "uid", "gid")) and _b64_ok(f.get("content_b64")))):
            return f"file entry {str(path)[:60]!r} is malformed"
    for path, d in dirs.items():
        if not isinstance(d, dict) or not isinstance(d.get("existed"), bool) or \
                (d["existed"] and not all(_small_int(d.get(k)) for k in ("mode", "uid", "gid"))):
            return f"dir entry {str(path)[:60]!r} is malformed"
    why = _added_problem(snap)
    if why:
        return why
    image = snap.get("image")
    if image is not None and not (isinstance(image, dict) and all(
            v is None or (isinstance(v, str) and SAFE_ARG.fullmatch(v)) for v in (image.get("ref"), image.get("id")))):
        return "image must name an image ref and id"
    if snap.get("record") is not None and not isinstance(snap.get("record"), dict):
        return "record must be an object"
    return None


_WORKER_KEYS = ("user", "group_add", "proc_uid", "proc_gid", "proc_groups", "id_output", "docker_ps_rc", "image_id",
                "state")


def _facts_problem(facts: dict[str, Any]) -> str | None:
    """What is wrong with the facts a snapshot keeps (the ones a rollback is judged by), naming the field, or None."""
    url = facts.get("docker_url")
    if url is not None and not (isinstance(url, str) and DOCKER_URL.fullmatch(url)):
        return "facts name a Docker URL hostprep would not use"
    missing = [k for k in ("docker_gid", "socket", "files", "bind_dirs", "worker", "record", "project_dir")
               if k not in facts]
    if missing:
        return f"facts.{missing[0]} is missing"
    sock, worker, record = facts["socket"], facts["worker"], facts["record"]
    if not isinstance(sock, dict) or not all(k in sock for k in ("mode", "uid", "gid", "has_acl")) or \
            not (sock["mode"] is None or _small_int(sock["mode"])):
        return "facts.socket must hold mode, uid, gid and has_acl"
    if not isinstance(worker, dict) or not all(k in worker for k in _WORKER_KEYS):
        return "facts.worker must hold " + ", ".join(_WORKER_KEYS)
    if not isinstance(facts["files"], dict) or not all(isinstance(f, dict) for f in facts["files"].values()):
        return "facts.files must be an object of objects"
    dirs = facts["bind_dirs"]
    if not isinstance(dirs, (list, tuple)) or not all(isinstance(d, dict) and isinstance(d.get("name"), str) for d in dirs):
        return "facts.bind_dirs must be a list of folders with a name"
    if not isinstance(facts["project_dir"], str) or not (record is None or isinstance(record, dict)):
        return "facts.project_dir must be a path and facts.record an object"
    if facts.get("deep") is not None and not isinstance(facts["deep"], bool):
        return "facts.deep must be true or false"
    return _containers_problem(facts.get("containers"))


def _containers_problem(containers: Any) -> str | None:
    """What is wrong with the containers a snapshot's facts list (what a rollback judges the services by), or None."""
    if not containers:
        return None
    if not isinstance(containers, (list, tuple)) or not all(isinstance(c, dict) for c in containers):
        return "facts.containers must be a list of objects"
    for c in containers:
        mounts, published = c.get("mounts"), c.get("published")
        if not all(k in c for k in ("docker_host", "running")) or not isinstance(published, (list, tuple)) or \
                not isinstance(mounts, (list, tuple)) or not all(isinstance(m, dict) and all(
                    k in m for k in ("source", "target", "kind", "read_only")) for m in mounts):
            return f"facts.containers: container {str(c.get('name'))[:60]!r} is malformed"
    return None


def _added_problem(snap: dict[str, Any]) -> str | None:
    """What is wrong with the services and networks a snapshot says the change added, or None."""
    added, kept = snap.get("added") or {}, snap.get("kept_services", [])
    if not isinstance(added, dict) or not isinstance(kept, list) or not all(
            isinstance(added.get(k) or [], list) for k in ("services", "networks")):
        return "added services and networks must be lists of names"
    names = [*(added.get("services") or []), *(added.get("networks") or []), *kept]
    if not all(isinstance(x, str) and SAFE_ARG.fullmatch(x) for x in names):
        return "added services and networks must be lists of names"
    project = added.get("project")
    if project is not None and not (isinstance(project, str) and SAFE_ARG.fullmatch(project)):
        return "added project must be a project name"
    return None


def _path_problem(snap: dict[str, Any], settings: HostSettings) -> str | None:
    """A path in the snapshot that hostprep itself would never touch on this host, or None."""
    names = set(PROBED_FILES) | ({settings.compose_file} if settings.compose_file else set())
    files = {STATE_FILE} | {path_in(settings.project_dir, n) for n in names}
    dirs = {bind_path(settings.project_dir, d) for d in settings.bind_dirs}
    bad = [p for p in snap["files"] if p not in files] + [p for p in snap["dirs"] if p not in dirs]
    if snap["socket"].get("path") not in (None, settings.socket_path):
        bad.append(str(snap["socket"].get("path")))
    return f"path {str(bad[0])[:80]!r} is not one hostprep touches on this host" if bad else None


def _small_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFFFFFF


def _b64_ok(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return True


