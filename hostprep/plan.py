"""Plan: desired state + facts → a list of Steps, each with before/after. Pure.

"Changed" means the plan has steps; every step that is not needed says why
in ``Plan.notes``. Problems block the apply; warnings do not.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from hostprep import compose
from hostprep.facts import COMPOSE_FILES, OVERRIDE_FILE, Facts
from hostprep.settings import HostSettings

SAFE_ARG = re.compile(r"^[A-Za-z0-9_./@+:=-]+$")


@dataclass(frozen=True)
class Action:
    """One primitive the host-side interpreter (apply.sh) executes."""

    op: str
    args: tuple[str, ...] = ()
    content: str | None = None

    def __post_init__(self) -> None:
        for a in (self.op, *self.args):
            if not SAFE_ARG.match(a):
                raise ValueError(f"unsafe value in action {self.op}: {a!r}")

    def __repr__(self) -> str:
        return f"<Action {self.op} {' '.join(self.args)}>"


@dataclass(frozen=True)
class Step:
    """A change with its reason and a before/after for the diff."""

    name: str
    why: str
    actions: tuple[Action, ...]
    before: str | None = None
    after: str | None = None

    def diff(self) -> str:
        """Unified diff of before → after (empty when not a text change)."""
        if self.before is None and self.after is None:
            return ""
        a = [ln if ln.endswith("\n") else ln + "\n" for ln in (self.before or "").splitlines(keepends=True)]
        b = [ln if ln.endswith("\n") else ln + "\n" for ln in (self.after or "").splitlines(keepends=True)]
        return "".join(difflib.unified_diff(a, b, f"before/{self.name}", f"after/{self.name}"))


@dataclass(frozen=True)
class Plan:
    host: str
    strategy: str
    steps: tuple[Step, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    docker_gid: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    @property
    def blocked(self) -> bool:
        return bool(self.problems)

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(a for s in self.steps for a in s.actions)

    def __repr__(self) -> str:
        return f"<Plan {self.host} {self.strategy} steps={len(self.steps)} problems={len(self.problems)}>"


@dataclass
class Draft:
    """Mutable scratch a strategy fills in; frozen into a Plan at the end."""

    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    override: dict[str, dict[str, object]] = field(default_factory=dict)
    recreate: bool = False
    build: bool = False


def path_in(facts: Facts, name: str) -> str:
    return f"{facts.project_dir.rstrip('/')}/{name}"


def file_step(facts: Facts, name: str, after: str | None, why: str) -> Step | None:
    """Write (or delete, when ``after`` is None) a project file, if it differs."""
    f = facts.files.get(name)
    before = f.content if f and f.exists else None
    if before == after:
        return None
    path = path_in(facts, name)
    if after is None:
        return Step(f"delete {name}", why, (Action("delete", (path,)),), before, None)
    ref = facts.compose_file
    owner = (str(f.uid), str(f.gid), oct(f.mode or 0o644)[2:]) if f and f.exists else \
        (str(ref.uid if ref else 0), str(ref.gid if ref else 0), "644")
    return Step(f"{'edit' if before is not None else 'create'} {name}", why,
                (Action("write", (path, *owner), after),), before, after)


def preconditions(facts: Facts, settings: HostSettings, strategy: str) -> list[str]:
    """Problems that make any strategy unsafe to apply."""
    out = []
    if not facts.dockerd_running:
        out.append("dockerd is not running on the host")
    if not facts.socket.exists:
        out.append(f"the Docker socket {settings.socket_path} does not exist")
    if strategy != "chmod" and facts.docker_gid is None:
        out.append("the host has no 'docker' group; group mapping needs one (or use --strategy chmod)")
    if not facts.project_exists:
        out.append(f"the Compose project dir {facts.project_dir} does not exist")
    elif facts.compose_file is None:
        out.append(f"no compose file ({', '.join(COMPOSE_FILES)}) in {facts.project_dir}")
    if facts.compose_flavour is None:
        out.append("neither `docker compose` (v2) nor `docker-compose` (v1) is installed")
    if not facts.worker.found:
        out.append(f"no container for service {settings.worker_service} in {facts.project_dir} (is the project up?)")
    if (facts.record or {}).get("corrupt"):
        out.append("hostprep's record on the host (/var/lib/hostprep/state.json) is unreadable; "
                   "inspect it (and `invoke snapshots`) before changing anything")
    recorded = (facts.record or {}).get("strategy")
    if recorded and recorded != strategy:
        out.append(f"strategy {recorded} is applied on this host; `invoke rollback` it before applying {strategy}")
    return out


def check_user_trap(facts: Facts, settings: HostSettings, draft: Draft) -> None:
    """A ``user:`` whose primary group is not 0 crash-loops the Airflow image: fix it in the override."""
    cf = facts.compose_file
    if cf is None:
        return
    data = compose.load_compose(cf.content)
    env = compose.parse_env(facts.files[".env"].content if facts.files.get(".env") else None)
    for svc in settings.services:
        user = compose.service_user(data, svc, env)
        if not compose.primary_group_is_root(user):
            uid = user.split(":", 1)[0] if user else str(settings.airflow_uid)
            draft.warnings.append(
                f"problem in compose file: service {svc} has user {user!r}; the Airflow image needs primary "
                f"group 0 (the docker GID belongs in group_add) - hostprep's override keeps {uid} with primary group 0")
            draft.override.setdefault(svc, {})["user"] = f"{uid}:0"


def bind_dir_steps(facts: Facts, settings: HostSettings, draft: Draft) -> None:
    """Make bind-mounted folders usable by AIRFLOW_UID without opening them to the world."""
    uid = settings.airflow_uid
    for d in facts.bind_dirs:
        path = d.name if d.name.startswith("/") else path_in(facts, d.name)
        if not d.exists:
            draft.steps.append(Step(f"mkdir {d.name}", f"missing; Docker would create it owned by root",
                                    (Action("mkdir", (path, str(uid), "0", "755")),), None, f"{uid}:0 755"))
            draft.recreate = True
            continue
        mode = d.mode or 0
        if mode & 0o002:
            draft.warnings.append(f"{d.name} is world-writable ({oct(mode)[2:]}); hostprep never opens folders to "
                                  f"the world - tighten it with chmod o-w once the owner is right")
        usable = d.uid == uid or (d.gid == 0 and mode & 0o070 == 0o070) or bool(mode & 0o002)
        if usable:
            continue
        draft.steps.append(Step(f"chown {d.name}", f"owned by {d.uid}:{d.gid}, not writable by AIRFLOW_UID {uid}",
                                (Action("chown", (path, str(uid), str(d.gid))),),
                                f"{d.uid}:{d.gid} {oct(mode)[2:]}", f"{uid}:{d.gid} {oct(mode)[2:]}"))


def override_steps(facts: Facts, settings: HostSettings, draft: Draft, strategy: str) -> None:
    """hostprep's override file plus the COMPOSE_FILE line that makes every compose run load it."""
    cf = facts.compose_file
    current = facts.files.get(OVERRIDE_FILE)
    if not draft.override:
        if current and current.exists and compose.MANAGED_MARK in (current.content or ""):
            draft.notes.append(f"{OVERRIDE_FILE} left in place (not needed by {strategy})")
        return
    if cf is None:
        return
    text = compose.render_override(draft.override, strategy, facts.docker_gid if strategy == "group-add" else None)
    step = file_step(facts, OVERRIDE_FILE, text, "hostprep's own override: the operator's compose file is untouched")
    if step:
        draft.steps.append(step)
        draft.recreate = True
    env_file = facts.files.get(".env")
    env_text = env_file.content if env_file and env_file.exists else None
    extra = ["docker-compose.override.yml"] if facts.files.get("docker-compose.override.yml", None) and \
        facts.files["docker-compose.override.yml"].exists else []
    value = compose.compose_file_value(env_text, cf.name, extra, OVERRIDE_FILE)
    env_step = file_step(facts, ".env", compose.set_env_var(env_text, "COMPOSE_FILE", value),
                         "COMPOSE_FILE so that a plain `docker compose up` keeps the fix")
    if env_step:
        draft.steps.append(env_step)
        draft.recreate = True


def make_plan(facts: Facts, settings: HostSettings, strategy: str | None = None) -> Plan:
    """The whole plan for one host. Pure: the same facts give the same plan."""
    from hostprep.strategies import get

    name = strategy or settings.strategy
    strat = get(name)
    draft = Draft(problems=preconditions(facts, settings, name))
    if not draft.problems:
        check_user_trap(facts, settings, draft)
        strat.plan(facts, settings, draft)
        override_steps(facts, settings, draft, name)
        bind_dir_steps(facts, settings, draft)
        if draft.build:
            draft.steps.append(Step(f"build {' '.join(settings.services)}", "the image must carry the docker group",
                                    (Action("compose-build", settings.services),)))
        if draft.recreate or draft.build:
            draft.steps.append(Step(f"recreate {' '.join(settings.services)}", "containers pick up the change",
                                    (Action("compose-up", settings.services),)))
    if not draft.steps and not draft.problems:
        draft.notes.append("nothing to do: the host already matches the desired state")
    return Plan(host=facts.host, strategy=name, steps=tuple(draft.steps), problems=tuple(draft.problems),
                warnings=tuple(draft.warnings), notes=tuple(draft.notes), services=settings.services,
                docker_gid=facts.docker_gid)
