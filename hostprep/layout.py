"""Where things are on a host, and the bind-folder rule; imports nothing from hostprep.

The probe's shell does not re-code the bind-folder rule: it gets each folder's path from
:func:`bind_path` (see ``facts.probe_env``).
"""

from __future__ import annotations

STATE_DIR = "/var/lib/hostprep"
STATE_FILE = f"{STATE_DIR}/state.json"
SNAPSHOT_DIR = f"{STATE_DIR}/snapshots"
OVERRIDE_FILE = "docker-compose.hostprep.yml"
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def path_in(project_dir: str, name: str) -> str:
    """A file of the Compose project.

    >>> path_in("/opt/airflow", ".env")
    '/opt/airflow/.env'
    """
    return f"{project_dir.rstrip('/')}/{name}"


def bind_path(project_dir: str, name: str) -> str:
    """A bind-mounted folder: absolute as given, else under the project dir.

    >>> bind_path("/opt/airflow", "dags"), bind_path("/opt/airflow", "/data/logs")
    ('/opt/airflow/dags', '/data/logs')
    """
    return name if name.startswith("/") else path_in(project_dir, name)


def configured_bind_path(project_dir: str, configured: tuple[str, ...], name: str) -> str:
    """The path of a bind folder the settings name; any other name is ``ValueError``: a path root
    chowns or creates is never one a host's output chose.

    >>> configured_bind_path("/opt/airflow", ("dags",), "dags")
    '/opt/airflow/dags'
    >>> configured_bind_path("/opt/airflow", ("dags",), "/var/run/docker.sock")
    Traceback (most recent call last):
    ...
    ValueError: bind folder '/var/run/docker.sock' is not in hostprep_bind_dirs
    """
    if name not in configured:
        raise ValueError(f"bind folder {name[:80]!r} is not in hostprep_bind_dirs")
    return bind_path(project_dir, name)


def writable_by(airflow_uid: int, uid: int | None, gid: int | None, mode: int) -> bool:
    """A folder AIRFLOW_UID can write without it being open to the world: owned by that uid, or
    group 0 (the worker's primary group) with rwx.

    >>> writable_by(50000, 0, 0, 0o775), writable_by(50000, 0, 0, 0o755)
    (True, False)
    """
    return uid == airflow_uid or (gid == 0 and mode & 0o070 == 0o070)
