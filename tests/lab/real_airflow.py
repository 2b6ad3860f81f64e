"""Real Apache Airflow on a lab host: the image, the Compose project and the smoke task.

The light lab project only mimics Airflow's user, mounts and Compose layout.
This module puts real Airflow (with the Docker provider) on a lab host, so
that the socket error and its fix are seen through an actual DockerOperator
task: ``airflow tasks test hostprep_check fetch`` inside the worker (a paused copy of ``hostprep_smoke``).

The host runs the official Airflow 3 Compose shape (CeleryExecutor, Postgres, Redis,
airflow-init, API server, scheduler, dag-processor, triggerer, Celery worker), every image
built from Debian 12 packages on the controller and moved with ``docker save | docker load``.

Flow: ``build_image`` (controller, cached) -> ``setup_host`` (one lab host, up to healthy)
-> ``docker exec <worker> *smoke_command(CHECK_DAG_ID, SMOKE_TASK)``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable

from hostprep.change import smoke
from tests.lab import lab as _lab

Log = Callable[[str], None]

AIRFLOW_VERSION = "3.3.2"
REQUIREMENTS = (  # the official image's Celery and Postgres extras; providers resolved for 3.3.2, pinned
    f"apache-airflow[celery,postgres]=={AIRFLOW_VERSION}",
    "apache-airflow-providers-docker==4.6.1",
    "apache-airflow-providers-celery==3.26.0",
    "apache-airflow-providers-postgres==7.1.1",
    # redis needs it below Python 3.11.3 (Debian's 3.11.2); pip download evaluates markers
    # against the controller's interpreter, not --python-version, so it is asked for by name
    "async-timeout==5.0.1",
    # celery 5.7 dropped celery.backends.database.retry, which the celery provider imports
    "celery==5.5.3",
)
IMAGE = f"hostprep-lab/airflow-real:{AIRFLOW_VERSION}-celery"
# The stack's other images, built from Debian 12 packages (tests/lab/airflow_real/<dir>): ref -> dir
STACK_IMAGES = {"hostprep-lab/postgres:15-bookworm": "postgres", "hostprep-lab/redis:7-bookworm": "redis"}
PROJECT = "airflow"   # the Compose project name: /opt/airflow's folder name
HEALTHY_TIMEOUT = 600.0
TASK_IMAGE = "hostprep-lab/task:latest"  # named in dags/hostprep_smoke.py
TASK_NETWORK = "hostprep-tasks"  # the DAG's network_mode
DAG_ID = "hostprep_smoke"       # unpaused: real DAG runs
CHECK_DAG_ID = "hostprep_check"  # the same tasks, left paused: `airflow tasks test` (the scheduler never races it)
LONG_DAG_ID = "hostprep_long"   # one DockerOperator task that works for 45 s (the drain test)
SMOKE_TASK = "fetch"
UNPAUSED_DAGS = (DAG_ID, LONG_DAG_ID)   # real runs need them unpaused; CHECK_DAG_ID stays paused
SMOKE_LINE = "hostprep-smoke: fetched 3 records"
WORKER_SERVICE = "airflow-worker"
# setup waits for these to be healthy and for the others to run: the dag-processor's, triggerer's and
# worker's checks start the Airflow CLI, which on this loaded 2-core machine can take over a minute
HEALTHY_SERVICES = ("postgres", "redis", "airflow-apiserver", "airflow-scheduler")
RUNNING_SERVICES = ("airflow-dag-processor", "airflow-triggerer", WORKER_SERVICE)

SRC = Path(__file__).resolve().parent / "airflow_real"
PROJECT_SRC = SRC / "project"
BIND_DIRS = ("dags", "logs", "plugins", "config")
KEEP_DIRS = (*BIND_DIRS, "data")


def _cache_dir() -> Path:
    """Wheels and build context for this Airflow version, under the lab's gitignored state."""
    return _lab.STATE / "airflow-real" / AIRFLOW_VERSION


def _requirements_txt() -> str:
    return "".join(r + "\n" for r in REQUIREMENTS)


# The image's interpreter, not the controller's: Debian bookworm's CPython 3.11.2 on glibc 2.36.
_TARGET_ARGS = (
    "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11.2",
    *(a for minor in range(36, 4, -1) for a in ("--platform", f"manylinux_2_{minor}_x86_64")),
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64", "--platform", "manylinux1_x86_64",
)


def _download_wheels(log: Log) -> Path:
    """pip download on the controller (PyPI is not reachable from builds); skipped once complete."""
    ctx = _cache_dir()
    wheels = ctx / "wheels"
    stamp = ctx / "wheels.complete"
    done = _requirements_txt() + " ".join(_TARGET_ARGS)
    if stamp.exists() and stamp.read_text() == done:
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
    stamp.write_text(done)
    log(f"downloaded {len(list(wheels.glob('*.whl')))} wheels")
    return ctx


def _image_id(ref: str) -> str | None:
    proc = _lab.docker("image", "inspect", "-f", "{{.Id}}", ref, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


LABEL = "hostprep.lab.inputs"


def _digest(files: list[Path], extra: str = "") -> str:
    """What an image is made of: its files (names and bytes), extra text, and the base image's id."""
    h = hashlib.sha256(extra.encode())
    for f in files:
        h.update(f"{f.name}\n".encode() + f.read_bytes())
    h.update((_image_id(_lab.BASE_IMAGE) or _lab.BASE_IMAGE).encode())
    return h.hexdigest()[:16]


def _build(ref: str, dockerfile: Path, context: Path, digest: str, log: Log) -> float:
    """docker build unless ``ref`` carries ``digest``; returns the seconds spent (0.0 when up to date)."""
    current = _lab.docker("image", "inspect", "-f", f'{{{{index .Config.Labels "{LABEL}"}}}}', ref, check=False)
    if current.returncode == 0 and current.stdout.decode().strip() == digest:
        log(f"{ref}: up to date")
        return 0.0
    started = time.monotonic()
    with _lab.progress(log, f"building {ref}"):
        _lab.docker("build", "-q", "-f", str(dockerfile), "--build-arg", f"AIRFLOW_VERSION={AIRFLOW_VERSION}",
                    "--label", f"{LABEL}={digest}", "-t", ref, str(context), timeout=1800)
    return time.monotonic() - started


def build_image(log: Log = print) -> str:
    """Build the stack's images on the controller's engine, those not up to date: Airflow, Postgres, Redis.

    Needs the lab's base and host:v2 images (``lab.build``). Returns the Airflow image ref.
    """
    ctx = _download_wheels(log)
    shutil.copy2(SRC / "entrypoint", ctx / "entrypoint")
    wheels = "".join(f"{w.name}:{w.stat().st_size}\n" for w in sorted((ctx / "wheels").iterdir()))
    host_cli = _image_id("hostprep-lab/host:v2") or ""
    spent = _build(IMAGE, SRC / "Dockerfile.image", ctx,
                   _digest([SRC / "Dockerfile.image", SRC / "entrypoint"], _requirements_txt() + wheels + host_cli), log)
    for ref, folder in STACK_IMAGES.items():
        src = SRC / folder
        spent += _build(ref, src / "Dockerfile", src, _digest(sorted(p for p in src.iterdir() if p.is_file())), log)
    if spent:
        log(f"real-Airflow stack images built in {spent:.1f}s")
    return IMAGE


def project_files() -> dict[str, bytes]:
    """The real-Airflow project as it lands in /opt/airflow on a host: relative path -> content."""
    files: dict[str, bytes] = {}
    for path in sorted(PROJECT_SRC.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(PROJECT_SRC).as_posix()
            files[".env" if rel == "env" else rel] = path.read_bytes()
    files["Dockerfile"] = files["Dockerfile"].replace(b"@IMAGE@", IMAGE.encode())
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


def _load_images(container: str, log: Log) -> None:
    """docker save | docker exec -i HOST docker load, of the stack's images the host lacks (same image id)."""
    refs = [IMAGE, *STACK_IMAGES, _lab.BASE_IMAGE]
    want = {ref: _image_id(ref) for ref in refs}
    if None in want.values():
        raise RuntimeError(f"{', '.join(r for r, i in want.items() if i is None)} missing on the controller: "
                           "call build_image() first")
    have = _lab.docker("exec", container, "docker", "image", "inspect", "-f", "{{.Id}}", *refs,
                       check=False).stdout.decode().split()
    missing = [ref for ref in refs if want[ref] not in have]
    if not missing:
        return
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    cli = _lab._docker_bin()
    with _lab.progress(log, f"{container}: loading {', '.join(missing)}"):
        save = subprocess.Popen([cli, "save", *missing], stdout=subprocess.PIPE, env=env)
        load = subprocess.run([cli, "exec", "-i", container, "docker", "load", "-q"],
                              stdin=save.stdout, capture_output=True, env=env)
        assert save.stdout is not None
        save.stdout.close()
        saved = save.wait()
    if saved != 0 or load.returncode != 0:
        raise RuntimeError(f"{container}: loading images failed: {load.stderr.decode()[-1500:]}")


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
# airflow-init (db migrate, admin user, airflow.cfg) runs first: the others depend on its success
$COMPOSE up -d --remove-orphans >/tmp/lab-up.log 2>&1 || { cat /tmp/lab-up.log; exit 1; }
# up: the services with cheap healthchecks healthy, the others running (a restarting one is not listed)
deadline=$(( $(date +%s) + ${HEALTHY_TIMEOUT%.*} ))
while :; do
    states=$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r docker inspect \
        -f '{{index .Config.Labels "com.docker.compose.service"}}={{if .State.Health}}{{.State.Health.Status}}{{else}}running{{end}}')
    ready=yes
    for svc in $HEALTHY; do echo "$states" | grep -qx "$svc=healthy" || ready=; done
    for svc in $RUNNING; do echo "$states" | grep -q "^$svc=" || ready=; done
    if [ -n "$ready" ]; then echo "$states"; break; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "not healthy after ${HEALTHY_TIMEOUT}s:"; echo "$states"; $COMPOSE ps; $COMPOSE logs --tail 30; exit 1
    fi
    sleep 2
done
# the operator's state the lab's DAGs need for real runs: parsed (dag-processor) and unpaused. A new DAG
# file is only listed at the bundle's next refresh (minutes), so the files are parsed now; `dags unpause`
# exits 0 for a DAG it does not know, so each one is checked in `dags list`.
$COMPOSE exec -T airflow-dag-processor airflow dags reserialize >/tmp/lab-reserialize.log 2>&1 || true
for dag in $DAGS; do
    for i in $(seq 30); do
        $COMPOSE exec -T airflow-scheduler airflow dags unpause "$dag" >/tmp/lab-unpause.log 2>&1
        $COMPOSE exec -T airflow-scheduler airflow dags list -o plain 2>/dev/null | awk -v d="$dag" '$1 == d {print $4}' \
            | grep -qx False && break
        [ "$i" -lt 30 ] || { echo "$dag never unpaused:"; cat /tmp/lab-reserialize.log /tmp/lab-unpause.log; exit 1; }
        sleep 5
    done
done
"""


def setup_host(container_name: str, compose_cmd: str, log: Log = print) -> None:
    """Put the real-Airflow project on a running lab host (its dockerd ready), start it, wait until healthy.

    Replaces the project in /opt/airflow (bind folders kept, owned 50000:0), builds the
    task image, creates the tasks' network and runs ``compose up -d`` (airflow-init migrates the
    Postgres database), waits for every healthcheck and unpauses the smoke DAG (real runs need it).
    The docker group and socket are left as they are.
    """
    started = time.monotonic()
    _load_images(container_name, log)
    env = {
        "COMPOSE": compose_cmd, "KEEP": " ".join(KEEP_DIRS), "BIND": " ".join(BIND_DIRS), "PROJECT": PROJECT,
        "NETWORK": TASK_NETWORK, "TASK_IMAGE": TASK_IMAGE, "HEALTHY_TIMEOUT": str(HEALTHY_TIMEOUT),
        "DAGS": " ".join(UNPAUSED_DAGS),
        "HEALTHY": " ".join(HEALTHY_SERVICES), "RUNNING": " ".join(RUNNING_SERVICES),
    }
    prelude = "".join(f"{k}={shlex.quote(v)}; " for k, v in env.items())
    with _lab.progress(log, f"{container_name}: real Airflow stack (compose build, up, healthy)"):
        states = _host_sh(container_name, prelude + SETUP_SCRIPT, input=_tar(project_files()),
                          timeout=HEALTHY_TIMEOUT + 300)
    log(f"{container_name}: real Airflow {AIRFLOW_VERSION} up and healthy in {time.monotonic() - started:.1f}s: "
        + " ".join(sorted(states.split())))


def smoke_command(dag_id: str = CHECK_DAG_ID, task_id: str = SMOKE_TASK) -> list[str]:
    """argv, run inside the worker container, that runs one task for real without the scheduler."""
    return ["airflow", "tasks", "test", dag_id, task_id]


smoke_state = smoke.smoke_state  # `airflow tasks test` exits 0 even when the task failed: read new_state


def worker_container(compose_cmd: str) -> str:
    """The worker's container name on a lab host: Compose v2 joins with '-', v1 with '_'."""
    if compose_cmd.strip() == "docker-compose":
        return f"airflow_{WORKER_SERVICE}_1"
    return f"airflow-{WORKER_SERVICE}-1"
