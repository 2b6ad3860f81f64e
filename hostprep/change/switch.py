"""Switching strategy: the recorded strategy's change undone, then the new one applied, in one run. Pure.

The undo puts back the *base*: the host as it was before hostprep's first fix, as a snapshot. A
first provision's snapshot is one (its record is None); a run that switches stores the base it
reached inside its own snapshot, so a later switch finds it again; a re-provision with the same
strategy points, through its snapshot's record, to the run before it. The new strategy is
planned against the facts as they will be once the base is back, and the whole change is taken
under one snapshot of the host as it is now, so a rollback returns to the old strategy exactly.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from hostprep.change import snapshots
from hostprep.host.facts import Facts, from_bytes
from hostprep.layout import bind_path, path_in
from hostprep.change.plan import make_plan
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import Action, Plan, Step

__all__ = ["MAX_CHAIN", "plan", "step_back", "undone"]

MAX_CHAIN = 50   # re-provisions followed back to the base before giving up


def step_back(snap: dict[str, Any]) -> dict[str, Any] | str | None:
    """From the snapshot a record names towards the base: the base itself (a dict), the id of the
    snapshot before (a re-provision with the same strategy), or None (no way back: refuse the switch)."""
    base = snap.get("base")
    if isinstance(base, dict):
        return base
    rec = snap.get("record")
    if rec is None:
        return snap
    sid = rec.get("snapshot_id") if isinstance(rec, dict) else None
    if rec.get("strategy") == snap.get("strategy") and isinstance(sid, str) and snapshots.SNAPSHOT_ID.fullmatch(sid):
        return sid
    return None


def undone(facts: Facts, base: dict[str, Any]) -> Facts:
    """The facts as they will be once ``base`` is put back: its files, socket, bind folders and (no)
    record; the worker recreated without any mapping and on the image the base saw."""
    by_path = {path_in(facts.project_dir, n): n for n in facts.files}
    files = dict(facts.files)
    for path, f in base["files"].items():
        name = by_path.get(path)
        if name is None:
            continue
        files[name] = replace(files[name], exists=True, content=from_bytes(base64.b64decode(f["content_b64"])),
                              mode=f["mode"], uid=f["uid"], gid=f["gid"]) if f["existed"] else \
            replace(files[name], exists=False, content=None, mode=None, uid=None, gid=None)
    dirs = tuple(_dir_undone(d, base["dirs"].get(bind_path(facts.project_dir, d.name))) for d in facts.bind_dirs)
    sock = base["socket"]
    socket = facts.socket if sock.get("mode") is None else \
        replace(facts.socket, mode=sock["mode"], uid=sock["uid"], gid=sock["gid"])
    image = base.get("image") or {}
    worker = replace(facts.worker, group_add=(), proc_groups=(), image_id=image.get("id") or facts.worker.image_id)
    return replace(facts, files=files, bind_dirs=dirs, socket=socket, record=base.get("record"), worker=worker)


def _dir_undone(d: Any, saved: dict[str, Any] | None) -> Any:
    if not saved or not saved["existed"] or not d.exists:
        return d   # a folder the first fix created is kept (see snapshots.kept_dirs)
    return replace(d, uid=saved["uid"], gid=saved["gid"], mode=saved["mode"])


def plan(facts: Facts, settings: HostSettings, strategy: str, base: dict[str, Any]) -> tuple[Plan, dict[str, Any]]:
    """(the plan, the base the next switch undoes to): undo the recorded strategy, then apply ``strategy``."""
    old = str((facts.record or {}).get("strategy"))
    base = {**base, "added": {"services": [], "networks": [], "project": None, **(base.get("added") or {})}}
    after_undo = undone(facts, base)
    new = make_plan(after_undo, settings, strategy)
    if new.blocked:
        return replace(new, host=facts.host), base
    undo = _undo_steps(facts, base, old)
    up_new = next((a.args for s in new.steps for a in s.actions if a.op == "compose-up"), ())
    kept = [x for x in (*base.get("kept_services", ()), *base["services"]) if x not in base["added"]["services"]]
    up = tuple(dict.fromkeys((*up_new, *kept, *settings.services)))
    steps = [*undo, *[s for s in new.steps if all(a.op != "compose-up" for a in s.actions)],
             Step(f"recreate {' '.join(up)}", f"containers leave {old} and pick up {strategy}",
                  (Action("compose-up", up),))]
    gone = [n for n in base["added"].get("networks") or [] if n not in new.added_networks]
    if gone and base["added"].get("project"):
        steps.append(Step(f"remove network {' '.join(gone)}", f"{old} added it; nothing uses it now",
                          tuple(Action("network-rm", (base["added"]["project"], n)) for n in gone)))
    switched = replace(new, host=facts.host, steps=tuple(steps), switched_from=old,
                       warnings=(f"switching strategy {old} -> {strategy}: the plan first undoes {old} (back to "
                                 f"snapshot {base['id']}, before hostprep's first fix), then applies {strategy}; "
                                 "`invoke rollback` returns to " + old, *new.warnings),
                       more_services=(*new.more_services, *[x for x in base["added"]["services"]
                                                            if x not in new.more_services]))
    return switched, _next_base(after_undo, new, base)


PERMISSIONS = frozenset({"chmod", "chown"})   # action ops (not strategies): a mode and an owner, one path
WHY = "as it was before hostprep's first fix"


def _undo_steps(facts: Facts, base: dict[str, Any], old: str) -> list[Step]:
    """The base's restore, without its recreate and network removal (they come after the new change);
    only what differs from the host as it is. A path's mode and owner are one step."""
    actions = [a for a in snapshots.restore_actions(base)[0] if a.op not in ("compose-up", "network-rm")]
    names = {path_in(facts.project_dir, n): n for n in facts.files}
    now = {facts.socket.path: (facts.socket.mode, facts.socket.uid, facts.socket.gid)}
    now |= {bind_path(facts.project_dir, d.name): (d.mode, d.uid, d.gid) for d in facts.bind_dirs}
    steps: list[Step] = []
    i = 0
    while i < len(actions):
        a, nxt = actions[i], actions[i + 1] if i + 1 < len(actions) else None
        if a.op in PERMISSIONS and nxt is not None and nxt.op in PERMISSIONS and nxt.args[0] == a.args[0]:
            step, i = _owner_step(old, (a, nxt), now.get(a.args[0])), i + 2
        else:
            step, i = _action_step(old, a, facts, names), i + 1
        if step is not None:
            steps.append(step)
    return steps


def _owner_step(old: str, pair: tuple[Action, Action], cur: tuple[int | None, ...] | None) -> Step | None:
    """A socket's or folder's mode and owner put back; None when they are already so."""
    ops = {x.op: x.args for x in pair}
    (mode,), (uid, gid) = ops["chmod"][1:], ops["chown"][1:]
    if cur == (int(mode, 8), int(uid), int(gid)):
        return None
    shown = f"{format(cur[0] or 0, 'o')} {cur[1]}:{cur[2]}" if cur else None
    return Step(f"undo {old}: {pair[0].args[0].rsplit('/', 1)[-1]} back to {mode} {uid}:{gid}", WHY, pair, shown,
                f"{mode} {uid}:{gid}")


def _action_step(old: str, a: Action, facts: Facts, names: dict[str, str]) -> Step | None:
    """One restore action as a step; None for a file already as the base had it."""
    path = a.args[0] if a.args else ""
    if a.op == "compose-rm":
        return Step(f"undo {old}: remove {' '.join(a.args)}", f"{old} added it", (a,))
    if a.op == "tag":
        return Step(f"undo {old}: retag {a.args[1]}", "the image as it was before", (a,))
    if a.op not in ("write", "delete") or path not in names:
        return Step(f"undo {old}: {a.op} {' '.join(a.args)}", WHY, (a,))
    f = facts.files[names[path]]
    now = f.content if f.exists else None
    same = a.op == "write" and f.exists and now == a.content and \
        (str(f.uid), str(f.gid), format(f.mode or 0, "o")) == a.args[1:4]
    if same or (a.op == "delete" and not f.exists):
        return None
    return Step(f"undo {old}: {'restore' if a.op == 'write' else 'delete'} {names[path]}", WHY, (a,), now, a.content)


def _next_base(after_undo: Facts, new: Plan, base: dict[str, Any]) -> dict[str, Any]:
    """The base, with what the new strategy touches for the first time as the host has it before its fix."""
    seen = snapshots.take(after_undo, new, base["id"])
    files = {**seen["files"], **base["files"]}
    dirs = {**seen["dirs"], **base["dirs"]}
    added = {"services": sorted({*base["added"]["services"], *seen["added"]["services"]}),
             "networks": sorted({*(base["added"].get("networks") or []), *(seen["added"].get("networks") or [])}),
             "project": base["added"].get("project") or seen["added"].get("project")}
    kept = [x for x in {*base.get("kept_services", ()), *seen["kept_services"]} if x not in added["services"]]
    return {**base, "files": files, "dirs": dirs, "added": added, "kept_services": sorted(kept),
            "recreated": bool(base.get("recreated") or seen["recreated"]), "image": base.get("image") or seen["image"],
            "services": sorted({*base["services"], *seen["services"]}), "record": None}
