"""Plan: desired state + facts → a list of Steps, each with before/after. Pure.

"Changed" means the plan has steps; every step that is not needed says why
in ``Plan.notes``. Problems block the apply; warnings do not. The strategy's own
steps come from the registry; the rest (preconditions, the override, bind folders) is common.
"""

from __future__ import annotations

from hostprep.host import compose
from hostprep import strategies
from hostprep.host.facts import Facts
from hostprep.strategies.findings import override_document, override_services
from hostprep.layout import COMPOSE_FILES, OVERRIDE_FILE, configured_bind_path, writable_by
from hostprep.change.leftovers import removal_steps
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import SAFE_ARG, Action, Draft, Plan, Step, comments_only, file_step

__all__ = ["SAFE_ARG", "Action", "Draft", "Plan", "Step", "file_step", "make_plan", "preconditions"]

FORGED = ("refused: the facts name {what}, which hostprep_bind_dirs does not (forged facts: a DAG file or a "
          "container's output posing as the probe's); nothing was changed")


def forged_bind_dirs(facts: Facts, settings: HostSettings) -> list[str]:
    """Bind folders in the facts that the settings do not name, or name twice: the probe prints each
    configured folder once (``facts.parse_bind_dirs`` refuses the others; this is the second check)."""
    names = [d.name for d in facts.bind_dirs]
    bad = [n for n in names if n not in settings.bind_dirs] + sorted({n for n in names if names.count(n) > 1})
    return [FORGED.format(what=f"bind folder {n[:80]!r}" + (" twice" if n in settings.bind_dirs else ""))
            for n in dict.fromkeys(bad)]


def preconditions(facts: Facts, settings: HostSettings, strategy: str) -> list[str]:
    """Problems that make any strategy unsafe to apply."""
    out = forged_bind_dirs(facts, settings)
    out += [f"refused: {why}; hostprep never reads or changes anything through a link or in place of a "
            "file or folder it expects (remove it, then re-run)" for why in facts.unsafe_paths]
    if not facts.dockerd_running:
        out.append("dockerd is not running on the host")
    if not facts.socket.exists:
        out.append(f"the Docker socket {settings.socket_path} does not exist")
    if strategies.get(strategy).needs_docker_group and facts.docker_gid is None:
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
        out.append(f"strategy {recorded} is applied on this host, and the snapshot from before hostprep's first fix "
                   f"(which switching to {strategy} undoes to) is on neither this controller nor the host; "
                   f"`hostprep rollback` it before applying {strategy}")
    return out


def check_user_trap(facts: Facts, settings: HostSettings, draft: Draft) -> None:
    """A ``user:`` whose primary group is not 0 crash-loops the Airflow image: fix it in the override."""
    cf = facts.compose_file
    if cf is None:
        return
    for svc in settings.services:
        user = compose.service_user(facts.compose_data, svc, facts.env)
        if not compose.primary_group_is_root(user):
            uid = user.split(":", 1)[0] if user else str(settings.airflow_uid)
            draft.warnings.append(
                f"problem in compose file: service {svc} has user {user!r}; the Airflow image needs primary "
                f"group 0 (the docker GID belongs in group_add) - hostprep's override keeps {uid} with primary group 0")
            draft.override.setdefault(svc, {})["user"] = f"{uid}:0"


def bind_dir_steps(facts: Facts, settings: HostSettings, draft: Draft) -> None:
    """Make bind-mounted folders usable by AIRFLOW_UID without opening them to the world; a folder's path
    is always ``project_dir/<configured name>`` (a name the settings do not give: a problem, no step)."""
    uid = settings.airflow_uid
    for d in facts.bind_dirs:
        try:
            path = configured_bind_path(settings.project_dir, settings.bind_dirs, d.name)
        except ValueError:
            draft.problems.append(FORGED.format(what=f"bind folder {d.name[:80]!r}"))
            continue
        if not d.exists:
            draft.steps.append(Step(f"mkdir {d.name}", f"missing; Docker would create it owned by root",
                                    (Action("mkdir", (path, str(uid), "0", "755")),), None, f"{uid}:0 755"))
            draft.recreate = True
            continue
        mode = d.mode or 0
        if mode & 0o002:
            draft.warnings.append(f"{d.name} is world-writable ({oct(mode)[2:]}); hostprep never opens folders to "
                                  f"the world - tighten it with chmod o-w once the owner is right")
        usable = writable_by(uid, d.uid, d.gid, mode) or bool(mode & 0o002)
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
    text = compose.render_override(draft.override, strategy, draft.override_gid, draft.override_notes,
                                   draft.override_top)
    step = file_step(facts, OVERRIDE_FILE, text, "hostprep's own override: the operator's compose file is untouched")
    if step and compose.same_document(current.content if current and current.exists else None, text, OVERRIDE_FILE):
        draft.steps.append(comments_only(step))   # e.g. an upgrade's new header: no container reads it
    elif step:
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


def _strategy_planned(facts: Facts, settings: HostSettings, draft: Draft, strat: strategies.Strategy) -> bool:
    """The user trap and the strategy's own steps; a compose file hostprep cannot read is a problem."""
    try:
        check_user_trap(facts, settings, draft)
        strat.plan(facts, settings, draft)
    except compose.ComposeError as exc:
        draft.problems.append(str(exc))
        return False
    return True


def make_plan(facts: Facts, settings: HostSettings, strategy: str | None = None) -> Plan:
    """The whole plan for one host. Pure: the same facts give the same plan."""
    name = strategy or settings.strategy
    strat = strategies.get(name)
    draft = Draft(problems=preconditions(facts, settings, name))
    if not draft.problems:   # Compose's leftovers from an interrupted recreate go first (hostprep.change.leftovers)
        draft.steps += removal_steps(facts)
    if not draft.problems and _strategy_planned(facts, settings, draft, strat):
        override_steps(facts, settings, draft, name)
        bind_dir_steps(facts, settings, draft)
        if draft.build:
            draft.steps.append(Step(f"build {' '.join(settings.services)}", "the image must carry the docker group",
                                    (Action("compose-build", settings.services),)))
        if draft.recreate or draft.build:
            up = (*draft.more_services, *settings.services)
            draft.steps.append(Step(f"recreate {' '.join(up)}", "containers pick up the change",
                                    (Action("compose-up", up),)))
    refused = foreign_paths(draft.steps, settings)
    if refused or forged_bind_dirs(facts, settings):   # no step survives, not even to be shown
        draft.problems = list(dict.fromkeys([*draft.problems, *refused]))
        draft.steps.clear()
    if not draft.steps and not draft.problems:
        draft.notes.append("nothing to do: the host already matches the desired state")
    added_services, added_networks = _added(facts, draft)
    return Plan(host=facts.host, strategy=name, steps=tuple(draft.steps), problems=tuple(draft.problems),
                warnings=tuple(draft.warnings), notes=tuple(draft.notes), services=settings.services,
                docker_gid=facts.access_gid, more_services=tuple(draft.more_services), added_services=added_services,
                added_networks=added_networks, project=facts.worker.compose_project)


OWNERSHIP_OPS = ("mkdir", "chown", "chmod")   # the actions that hand a path to someone


def foreign_paths(steps: list[Step], settings: HostSettings) -> list[str]:
    """Ownership and mode changes on a path that is neither a configured bind folder nor the socket:
    whatever planned them, such a plan is refused before any action (defence in depth).

    >>> foreign_paths([Step("x", "y", (Action("mkdir", ("/etc/x", "1", "0", "755")),))], HostSettings())
    ["refused: the plan would mkdir '/etc/x', a path hostprep does not manage; nothing was changed"]
    """
    allowed = {*settings.bind_paths, settings.socket_path}
    bad = {a.args[0]: a.op for s in steps for a in s.actions if a.op in OWNERSHIP_OPS and a.args[0] not in allowed}
    return [f"refused: the plan would {op} {p[:80]!r}, a path hostprep does not manage; nothing was changed"
            for p, op in bad.items()]


def _added(facts: Facts, draft: Draft) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(services, networks) the override adds that were not in it before: a rollback removes them."""
    before = override_services(facts) or {}
    had, nets = (override_document(facts) or {}).get("networks"), draft.override_top.get("networks")
    return (tuple(s for s in draft.more_services if s not in before),
            tuple(str(n) for n in (nets if isinstance(nets, dict) else {}) if not (isinstance(had, dict) and n in had)))
