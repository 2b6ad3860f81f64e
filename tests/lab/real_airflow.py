"""Real Apache Airflow on a lab host: the image, the Compose project and the smoke task.

The light lab project only mimics Airflow's user, mounts and Compose layout.
This module puts real Airflow (with the Docker provider) on a lab host, so
that the socket error and its fix are seen through an actual DockerOperator
task: ``airflow tasks test hostprep_smoke fetch`` inside the worker.

Flow: ``build_image`` (controller, cached) -> ``setup_host`` (one lab host)
-> ``docker exec <worker> *smoke_command(DAG_ID, SMOKE_TASK)``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable

from hostprep import smoke
from tests.lab import lab as _lab

Log = Callable[[str], None]

AIRFLOW_VERSION = "3.3.2"
REQUIREMENTS = (
    f"apache-airflow=={AIRFLOW_VERSION}",
    "apache-airflow-providers-docker==4.6.1",  # resolved for 3.3.2; pinned so CI builds the same image
)
IMAGE = f"hostprep-lab/airflow-real:{AIRFLOW_VERSION}"
TASK_IMAGE = "hostprep-lab/task:latest"  # named in dags/hostprep_smoke.py
TASK_NETWORK = "hostprep-tasks"  # the DAG's network_mode
DAG_ID = "hostprep_smoke"
SMOKE_TASK = "fetch"
SMOKE_LINE = "hostprep-smoke: fetched 3 records"
WORKER_SERVICE = "airflow-worker"

SRC = Path(__file__).resolve().parent / "airflow_real"
PROJECT_SRC = SRC / "project"
BIND_DIRS = ("dags", "logs", "plugins", "config")
KEEP_DIRS = (*BIND_DIRS, "data")


def _cache_dir() -> Path:
    """Wheels and build context for this Airflow version, under the lab's gitignored state."""
    return _lab.STATE / "airflow-real" / AIRFLOW_VERSION


def _requirements_txt() -> str:
    return "".join(r + "\n" for r in REQUIREMENTS)


# The image's interpreter, not the controller's: Debian bookworm's CPython 3.11 on glibc 2.36.
_TARGET_ARGS = (
    "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11",
    *(a for minor in range(36, 4, -1) for a in ("--platform", f"manylinux_2_{minor}_x86_64")),
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64", "--platform", "manylinux1_x86_64",
)


def _download_wheels(log: Log) -> Path:
    """pip download on the controller (PyPI is not reachable from builds); skipped once complete."""
    ctx = _cache_dir()
    wheels = ctx / "wheels"
    stamp = ctx / "wheels.complete"
    if stamp.exists() and stamp.read_text() == _requirements_txt():
        return ctx
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "requirements.txt").write_text(_requirements_txt())
    with _lab.progress(log, f"downloading wheels for {', '.join(REQUIREMENTS)} (about 25 s)"):
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), "-r", str(ctx / "requirements.txt"),
             *_TARGET_ARGS],
            capture_output=True, text=True,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"pip download failed: {proc.stderr[-2000:]}")
    stamp.write_text(_requirements_txt())
    log(f"downloaded {len(list(wheels.glob('*.whl')))} wheels")
    return ctx


def _image_id(ref: str) -> str | None:
    proc = _lab.docker("image", "inspect", "-f", "{{.Id}}", ref, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def _inputs_digest(ctx: Path) -> str:
    """What the image is made of: the Dockerfile, the wheel set and the images it copies from."""
    h = hashlib.sha256()
    h.update((SRC / "Dockerfile.image").read_bytes())
    h.update(_requirements_txt().encode())
    for whl in sorted((ctx / "wheels").iterdir()):
        h.update(f"{whl.name}:{whl.stat().st_size}\n".encode())
    for ref in (_lab.BASE_IMAGE, "hostprep-lab/host:v2"):
        h.update((_image_id(ref) or ref).encode())
    return h.hexdigest()[:16]


def build_image(log: Log = print) -> str:
    """Build hostprep-lab/airflow-real:<version> on the controller's engine, unless it is up to date.

    Needs the lab's base and host:v2 images (``lab.build``). Returns the image ref.
    """
    ctx = _download_wheels(log)
    digest = _inputs_digest(ctx)
    label = "hostprep.lab.inputs"
    current = _lab.docker("image", "inspect", "-f", f'{{{{index .Config.Labels "{label}"}}}}', IMAGE, check=False)
    if current.returncode == 0 and current.stdout.decode().strip() == digest:
        log(f"{IMAGE}: up to date")
        return IMAGE
    with _lab.progress(log, f"building {IMAGE} (about a minute cold)"):
        _lab.docker("build", "-q", "-f", str(SRC / "Dockerfile.image"), "--build-arg", f"AIRFLOW_VERSION={AIRFLOW_VERSION}",
                    "--label", f"{label}={digest}", "-t", IMAGE, str(ctx), timeout=1800)
    return IMAGE


def project_files() -> dict[str, bytes]:
    """The real-Airflow project as it lands in /opt/airflow on a host: relative path -> content."""
    files: dict[str, bytes] = {}
    for path in sorted(PROJECT_SRC.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(PROJECT_SRC).as_posix()
            files[".env" if rel == "env" else rel] = path.read_bytes()
    files["Dockerfile"] = files["Dockerfile"].replace(b"@AIRFLOW_VERSION@", AIRFLOW_VERSION.encode())
    return files


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if data.startswith(b"#!") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _host_sh(container: str, script: str, *, input: bytes | None = None, timeout: float = 900) -> str:
    """A root shell script inside the lab host (the lab's back door, not hostprep's)."""
    args = ["exec", "-i"] if input is not None else ["exec"]
    proc = _lab.docker(*args, container, "sh", "-c", script, input=input, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{container}: script failed ({proc.returncode}):\n"
                           f"{proc.stdout.decode()[-1500:]}{proc.stderr.decode()[-2500:]}")
    return proc.stdout.decode()


def _load_image(container: str, log: Log) -> None:
    """docker save | docker exec -i HOST docker load, skipped when the host has the same image id."""
    want = _image_id(IMAGE)
    if want is None:
        raise RuntimeError(f"{IMAGE} is missing on the controller: call build_image() first")
    have = _lab.docker("exec", container, "docker", "image", "inspect", "-f", "{{.Id}}",
                       IMAGE, _lab.BASE_IMAGE, check=False).stdout.decode().split()
    if have and have[0] == want and len(have) == 2:
        return
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    cli = _lab._docker_bin()
    with _lab.progress(log, f"{container}: loading {IMAGE} (about 45 s the first time)"):
        save = subprocess.Popen([cli, "save", IMAGE, _lab.BASE_IMAGE], stdout=subprocess.PIPE, env=env)
        load = subprocess.run([cli, "exec", "-i", container, "docker", "load", "-q"],
                              stdin=save.stdout, capture_output=True, env=env)
        assert save.stdout is not None
        save.stdout.close()
        saved = save.wait()
    if saved != 0 or load.returncode != 0:
        raise RuntimeError(f"{container}: loading {IMAGE} failed: {load.stderr.decode()[-1500:]}")


SETUP_SCRIPT = """
set -e
mkdir -p /opt/airflow && cd /opt/airflow
# the project exactly as shipped: drop everything but the bind folders, unpack
find . -mindepth 1 -maxdepth 1 $(for d in $KEEP; do printf '! -name %s ' "$d"; done) -exec rm -rf {} +
tar -xf -
mkdir -p $KEEP
chown 50000:0 $BIND && chmod 755 $BIND
docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK" >/dev/null
docker build -q -t "$TASK_IMAGE" task >/dev/null
$COMPOSE build -q >/tmp/lab-build.log 2>&1 || $COMPOSE build >/tmp/lab-build.log 2>&1 \
    || { cat /tmp/lab-build.log; exit 1; }
$COMPOSE up -d --remove-orphans >/tmp/lab-up.log 2>&1 || { cat /tmp/lab-up.log; exit 1; }
# the metadata database lives on a named volume: migrate once per Airflow version
if ! $COMPOSE exec -T "$WORKER" test -f "/opt/airflow/db/migrated-$VERSION"; then
    $COMPOSE exec -T "$WORKER" sh -c \
        "airflow db migrate >/opt/airflow/db/migrate.log 2>&1 || { tail -40 /opt/airflow/db/migrate.log; exit 1; }"
    $COMPOSE exec -T "$WORKER" touch "/opt/airflow/db/migrated-$VERSION"
fi
"""


def setup_host(container_name: str, compose_cmd: str, log: Log = print) -> None:
    """Put the real-Airflow project on a running lab host (its dockerd ready) and start it.

    Replaces the project in /opt/airflow (bind folders kept, owned 50000:0), builds the
    task image, creates the tasks' network, migrates the database once and runs
    ``compose up -d``. The docker group and socket are left as they are.
    """
    started = time.monotonic()
    _load_image(container_name, log)
    env = {
        "COMPOSE": compose_cmd, "KEEP": " ".join(KEEP_DIRS), "BIND": " ".join(BIND_DIRS),
        "NETWORK": TASK_NETWORK, "TASK_IMAGE": TASK_IMAGE, "WORKER": WORKER_SERVICE, "VERSION": AIRFLOW_VERSION,
    }
    prelude = "".join(f"{k}={shlex.quote(v)}; " for k, v in env.items())
    with _lab.progress(log, f"{container_name}: real Airflow project (compose build, up, db migrate)"):
        _host_sh(container_name, prelude + SETUP_SCRIPT, input=_tar(project_files()))
    log(f"{container_name}: real Airflow {AIRFLOW_VERSION} up in {time.monotonic() - started:.1f}s")


def smoke_command(dag_id: str = DAG_ID, task_id: str = SMOKE_TASK) -> list[str]:
    """argv, run inside the worker container, that runs one task for real without the scheduler."""
    return ["airflow", "tasks", "test", dag_id, task_id]


smoke_state = smoke.smoke_state  # `airflow tasks test` exits 0 even when the task failed: read new_state


def worker_container(compose_cmd: str) -> str:
    """The worker's container name on a lab host: Compose v2 joins with '-', v1 with '_'."""
    if compose_cmd.strip() == "docker-compose":
        return f"airflow_{WORKER_SERVICE}_1"
    return f"airflow-{WORKER_SERVICE}-1"
