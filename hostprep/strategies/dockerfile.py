"""dockerfile: bake the docker group into the worker image (groupadd + usermod), rebuild, recreate."""

from __future__ import annotations

from hostprep import compose
from hostprep.facts import Facts
from hostprep.plan import Draft, file_step
from hostprep.settings import HostSettings


class DockerfileGroup:
    name = "dockerfile"

    def plan(self, facts: Facts, settings: HostSettings, draft: Draft) -> None:
        cf = facts.compose_file
        data = compose.load_compose(cf.content if cf else None)
        ctx = compose.build_context(data, settings.worker_service)
        if ctx is None or ctx[0].rstrip("/") not in (".", "./", facts.project_dir.rstrip("/")):
            draft.problems.append(f"service {settings.worker_service} has no `build: .` in the compose file; "
                                  "the dockerfile strategy needs one (or use group-add)")
            return
        name = ctx[1]
        df = facts.files.get(name)
        if df is None or not df.exists or df.content is None:
            draft.problems.append(f"{name} not found in {facts.project_dir}")
            return
        assert facts.docker_gid is not None
        # Docker adds the image's /etc/group memberships only when `user:` names no group, so the
        # override keeps the uid and lets the image's passwd entry give primary group 0.
        for svc in settings.services:
            raw = (compose.service(data, svc) or {}).get("user")
            uid_part, group_part = compose.split_user(str(raw)) if raw is not None else ("", None)
            if group_part is not None:
                draft.override.setdefault(svc, {})["user"] = uid_part
        wanted = compose.with_block(df.content, facts.docker_gid, settings.airflow_uid)
        step = file_step(facts, name, wanted, f"add the docker group (GID {facts.docker_gid}) to the image")
        if step:
            draft.steps.append(step)
            draft.build = True
        elif facts.docker_gid not in facts.worker.proc_groups:
            draft.build = True

    def satisfied(self, facts: Facts, settings: HostSettings) -> list[tuple[str, bool, str]]:
        from hostprep.strategies import group_mapped

        return group_mapped(facts)
