"""dockerfile: bake the docker group into the worker image (groupadd + usermod), rebuild, recreate."""

from __future__ import annotations

import re

from hostprep.host import compose
from hostprep.host.facts import Facts
from hostprep.strategies.findings import WARNING, Finding, Rule, override_services, provision_hint
from hostprep.hostdata import lines, lines_kept
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import Draft, comments_only, file_step
from hostprep.strategies.base import Row, Strategy
from hostprep.strategies.groups import (GID_STALE, OVERRIDE_MISSING, gid_stale, group_mapped, id_shows_gid,
                                        override_gone, recorded_services, socket_gid_warning)

BLOCK_BEGIN = "# >>> hostprep: docker group"
BLOCK_END = "# <<< hostprep"
OVERRIDE_NOTES = (   # the override's header says why `user:` names no group
    "`user:` without a group, so Docker applies the image's docker group membership;",
    "the primary group still comes from the image's passwd entry (0 for airflow).",
)
BLOCK_MISSING = Rule("dockerfile-block-missing", WARNING, "hostprep's Dockerfile block is in place")


class DockerfileGroup(Strategy):
    name = "dockerfile"
    help = "bake the docker group into the worker image (a marked Dockerfile block), rebuild, recreate"
    rules = (GID_STALE, OVERRIDE_MISSING, BLOCK_MISSING)

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        draft.warnings += socket_gid_warning(facts)
        draft.override_notes = OVERRIDE_NOTES
        ctx = compose.build_context(facts.compose_data, settings.worker_service)
        if ctx is None or ctx[0].rstrip("/") not in (".", "./", facts.project_dir.rstrip("/")):
            draft.problems.append(f"service {settings.worker_service} has no `build: .` in the compose file; "
                                  "the dockerfile strategy needs one (or use group-add)")
            return
        name = ctx[1]
        df = facts.files.get(name)
        if df is None or not df.exists or df.content is None:
            draft.problems.append(f"{name} not found in {facts.project_dir}")
            return
        assert facts.access_gid is not None
        # Docker adds the image's /etc/group memberships only when `user:` names no group, so the
        # override keeps the uid and lets the image's passwd entry give primary group 0.
        for svc in settings.services:
            raw = (compose.service(facts.compose_data, svc) or {}).get("user")
            uid_part, group_part = compose.split_user(str(raw)) if raw is not None else ("", None)
            if group_part is not None:
                draft.override.setdefault(svc, {})["user"] = uid_part
        wanted = with_block(df.content, facts.access_gid, settings.airflow_uid)
        step = file_step(facts, name, wanted, f"add the docker group (GID {facts.access_gid}) to the image")
        if step and instructions(df.content) == instructions(wanted):
            draft.steps.append(comments_only(step))   # e.g. an upgrade's new block comment: the image is the same
            step = None
        elif step:
            draft.steps.append(step)
            draft.build = True
        if step is None and facts.access_gid not in facts.worker.proc_groups:
            draft.build = True

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[Row]:
        return group_mapped(facts)

    def proof(self, facts: Facts) -> list[Row]:
        return id_shows_gid(facts)

    def drift(self, facts: Facts, settings: HostSettings) -> list[Finding]:
        """The GID in the Dockerfile block; the block itself; the override when a `user:` names a group."""
        gid, places = facts.access_gid, []
        marked = next((f for f in facts.files.values() if f.exists and BLOCK_BEGIN in (f.content or "")), None)
        block = block_gid(marked.content if marked else None)
        if block not in (None, gid):
            places.append(f"{marked.name if marked else 'Dockerfile'} block adds {block}")
        out = gid_stale(facts, self.name, places)
        services = recorded_services(facts, settings)
        users = [(compose.service(facts.compose_data, s) or {}).get("user") for s in services]
        if any(u is not None and compose.split_user(str(u))[1] is not None for u in users):
            out += override_gone(facts, self.name, services, override_services(facts), group_add=False)
        ctx = compose.build_context(facts.compose_data, settings.worker_service)
        name = ctx[1] if ctx else "Dockerfile"
        df = facts.files.get(name)
        if block_gid(df.content if df else None) is None:
            out.append(Finding(BLOCK_MISSING, f"hostprep's docker-group block is gone from {name}; "
                               "the next build drops the fix", f"`{provision_hint(facts.host, self.name)}` adds and rebuilds it"))
        return out


# ------------------------------------------------------------------ the Dockerfile block (pure)


def strip_block(dockerfile: str) -> str:
    """The Dockerfile without hostprep's block."""
    out, inside = [], False
    for line in lines_kept(dockerfile):   # the host's file: "\n" ends a line, as for Docker's builder
        if line.startswith(BLOCK_BEGIN):
            inside = True
        elif inside and line.startswith(BLOCK_END):
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def instructions(dockerfile: str) -> list[str]:
    r"""What Docker's builder reads of a Dockerfile: its lines without the comment lines it drops, except at
    the top, where a ``# directive=value`` line is a parser directive (kept verbatim up to the first other line).

    >>> instructions("# syntax=docker/dockerfile:1\nFROM x\n# old words\nRUN a \\\n# inside\n  b\n")
    ['# syntax=docker/dockerfile:1', 'FROM x', 'RUN a \\', '  b']
    """
    out, head = [], True
    for line in lines(dockerfile):   # the host's file: "\n" ends a line
        head = head and line.lstrip().startswith("#")
        if head or not line.lstrip().startswith("#"):
            out.append(line)
    return out


def last_user(dockerfile: str) -> str | None:
    users = [ln.split(None, 1)[1].strip() for ln in lines(dockerfile)
             if ln.strip().upper().startswith("USER ") and len(ln.split(None, 1)) == 2]
    return users[-1] if users else None


def with_block(dockerfile: str, gid: int, uid: int) -> str:
    """The Dockerfile with hostprep's docker-group block appended (replacing an old one)."""
    base = strip_block(dockerfile)
    if base and not base.endswith("\n"):
        base += "\n"
    back_to = last_user(base)
    lines = [
        f"{BLOCK_BEGIN} (GID {gid}; managed by hostprep, `hostprep rollback` removes this block)",
        "USER root",
        f'RUN set -e; g=$(getent group {gid} | cut -d: -f1); '
        f'if [ -z "$g" ]; then if getent group docker >/dev/null; then g=hostdocker; else g=docker; fi; '
        f'groupadd -g {gid} "$g"; fi; u=$(getent passwd {uid} | cut -d: -f1); '
        f'if [ -z "$u" ]; then echo "hostprep: no user with uid {uid} in this image" >&2; exit 1; fi; '
        f'usermod -aG "$g" "$u"',
    ]
    if back_to and back_to.lower() not in ("root", "0"):
        lines.append(f"USER {back_to}")
    lines.append(BLOCK_END)
    return base + "\n".join(lines) + "\n"


def block_gid(dockerfile: str | None) -> int | None:
    """GID named in hostprep's Dockerfile block, if the block is there."""
    m = re.search(rf"^{re.escape(BLOCK_BEGIN)} \(GID (\d+)", dockerfile or "", re.M)
    return int(m.group(1)) if m else None
