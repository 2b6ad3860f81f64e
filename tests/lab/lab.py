"""The hostprep test lab: containers that play Ubuntu EC2 hosts running Airflow in Compose.

Each lab host has its own sshd published on 127.0.0.1, its own dockerd, a
``docker`` group with a GID chosen on purpose, and an Airflow-shaped Compose
project in /opt/airflow whose worker runs as 50000:0 with the socket mounted:
the "permission denied" bug, reproduced for real. The lab drives its hosts
with ``docker exec`` (it is the hosts' hypervisor); hostprep reaches them
only over SSH.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import yaml

LAB_DIR = Path(__file__).resolve().parent
REPO = LAB_DIR.parents[1]
STATE = LAB_DIR / ".state"
KEY = STATE / "id_ed25519"
KNOWN_HOSTS = STATE / "known_hosts"
INVENTORY = REPO / "inventories" / "lab.yml"
PREFIX = os.environ.get("HOSTPREP_LAB_PREFIX", "hostprep-lab")
PORT_BASE = int(os.environ.get("HOSTPREP_LAB_PORT_BASE", "2200"))
SERVICES = ""  # compose services started on light hosts ("" = all)
# How lab hosts boot: "systemd" (PID 1, docker.socket activating docker.service, as Ubuntu EC2 hosts run)
# or "direct" (a shell starts dockerd, which makes its own socket, and sshd: faster, for the benchmark).
INIT = os.environ.get("HOSTPREP_LAB_INIT", "systemd")
INITS = ("systemd", "direct")


@contextlib.contextmanager
def fleet(*, prefix: str, port_base: int, inventory: Path, known_hosts: Path, services: str = "",
          init: str = "direct") -> Iterator[None]:
    """Point the lab at another fleet (the benchmark's) for a while: names, ports, inventory, services, boot.

    The benchmark's hosts boot direct by default: faster, and their sshd logs to `docker logs`, where the
    benchmark counts connections.
    """
    global PREFIX, PORT_BASE, INVENTORY, KNOWN_HOSTS, SERVICES, INIT
    saved = PREFIX, PORT_BASE, INVENTORY, KNOWN_HOSTS, SERVICES, INIT
    PREFIX, PORT_BASE, INVENTORY, KNOWN_HOSTS, SERVICES, INIT = prefix, port_base, inventory, known_hosts, services, init
    try:
        yield
    finally:
        PREFIX, PORT_BASE, INVENTORY, KNOWN_HOSTS, SERVICES, INIT = saved
BASE_IMAGE = "hostprep-lab/base:bookworm"
AIRFLOW_BASE_IMAGE = "hostprep-lab/airflow-base:latest"
DEBIAN_MIRROR = os.environ.get("HOSTPREP_LAB_MIRROR", "http://deb.debian.org/debian")
# docker GIDs as real installs leave them: docker-ce's `groupadd --system` takes the highest free
# system GID (999 on Ubuntu cloud images, 995-998 elsewhere), Debian's docker.io the lowest from 100.
GIDS = {1: 999, 2: 121, 3: 995, 11: 998}
PROJECT_DIR = "/opt/airflow"
BIND_DIRS = ("dags", "logs", "plugins", "config")

Log = Callable[[str], None]
HEARTBEAT = 10.0   # seconds between "still ..." lines during a long wait


@contextlib.contextmanager
def progress(log: Log, what: str, every: float = HEARTBEAT) -> Iterator[None]:
    """Say what a long wait is, a line with the elapsed time every ``every`` seconds, and when it ended."""
    started, done = time.monotonic(), threading.Event()

    def beat() -> None:
        while not done.wait(every):
            log(f"... {what}: {time.monotonic() - started:.0f}s")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        log(f"{what}: done in {time.monotonic() - started:.1f}s")


def _docker_bin() -> str:
    """Prefer the Debian docker.io client: it matches the engine and builds without buildx."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")


def docker(*args: str, input: bytes | None = None, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[bytes]:
    """Run the controller's docker CLI against the outer engine."""
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    proc = subprocess.run([_docker_bin(), *args], input=input, capture_output=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return proc


REAL_BASE = 10  # real-Airflow hosts sit in slots 11, 12, ...: names real1, real2, ports 2211, 2212


@dataclass(frozen=True)
class LabHost:
    """One lab host: its name, sshd port, Compose flavour and docker GID.

    Light hosts (lab1, lab2, ...) run an Airflow-shaped project whose services sleep;
    real hosts (real1, ...) run real Airflow with a DockerOperator DAG. Which one a host is
    is said explicitly, never inferred from its number (a 30-host bench fleet is all light).
    """

    index: int
    real: bool = False

    @property
    def slot(self) -> int:
        """Where the host sits in the port and GID plan: light hosts 1.., real hosts REAL_BASE+1.."""
        return REAL_BASE + self.index if self.real else self.index

    @property
    def name(self) -> str:
        return f"real{self.index}" if self.real else f"lab{self.index}"

    @property
    def container(self) -> str:
        return f"{PREFIX}-{self.name if self.real else self.index}"

    @property
    def volume(self) -> str:
        return f"{self.container}-docker"

    @property
    def port(self) -> int:
        return PORT_BASE + self.slot

    @property
    def compose(self) -> str:
        return "v2" if self.slot % 2 else "v1"

    @property
    def compose_cmd(self) -> str:
        return "docker compose" if self.compose == "v2" else "docker-compose"

    @property
    def docker_gid(self) -> int:
        # 900 + slot, skipping 1000 and up (the image's `ubuntu` group is 1000)
        return GIDS.get(self.slot, 900 + self.slot if self.slot < 100 else 1900 + self.slot)

    @property
    def init(self) -> str:
        """How this host's container boots ("systemd" or "direct"): its label, else the lab's INIT."""
        out = docker("inspect", "-f", '{{index .Config.Labels "hostprep.lab.init"}}', self.container, check=False)
        label = out.stdout.decode().strip() if out.returncode == 0 else ""
        return label if label in INITS else ("direct" if out.returncode == 0 else INIT)

    @property
    def socket_recreate(self) -> str:
        """The host's command for what a reboot does to the socket: made again, 660 with the group's GID now."""
        return "/usr/local/sbin/lab-socket-recreate" if self.init == "systemd" else "/usr/local/sbin/lab-dockerd-restart"

    def sshd_log(self) -> str:
        """What this host's sshd logged (systemd: ssh.service's journal; direct: the container's stderr)."""
        if self.init == "systemd":
            return self.exec("journalctl -u ssh.service -o cat --no-pager", check=False)
        return docker("logs", self.container, check=False).stderr.decode(errors="replace")

    def exec(self, script: str, *, input: bytes | None = None, check: bool = True, timeout: float = 600) -> str:
        """Run a root shell script inside this host (the lab's back door, not hostprep's)."""
        args = ["exec", "-i"] if input is not None else ["exec"]
        proc = docker(*args, self.container, "sh", "-c", script, input=input, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: script failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}\n{script}")
        return proc.stdout.decode()


def hosts(n: int, real: int = 0) -> list[LabHost]:
    """n light hosts and ``real`` real-Airflow ones; their ports must not overlap."""
    if real and n > REAL_BASE:
        raise ValueError(f"at most {REAL_BASE} light hosts beside real ones (their ports would clash)")
    return [LabHost(i) for i in range(1, n + 1)] + [LabHost(i, real=True) for i in range(1, real + 1)]


def running_hosts() -> list[LabHost]:
    """Lab hosts whose containers are running, by index."""
    out = docker("ps", "--filter", "label=hostprep.lab=host", "--format", "{{.Names}}").stdout.decode().split()
    found = []
    for name in out:
        suffix = name[len(PREFIX) + 1:] if name.startswith(PREFIX + "-") else ""
        if suffix.isdigit():
            found.append(LabHost(int(suffix)))
        elif suffix.startswith("real") and suffix[4:].isdigit():
            found.append(LabHost(int(suffix[4:]), real=True))
    return sorted(found, key=lambda h: h.slot)


# ---------------------------------------------------------------- build

def _image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


def _compose_v2_binary(log: Log) -> Path:
    """The Compose v2 plugin, from Debian 13's docker-compose package (cached)."""
    target = STATE / "docker-compose-v2"
    if target.exists():
        return target
    log("fetching the Compose v2 plugin (Debian trixie docker-compose .deb)")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "lists/partial").mkdir(parents=True)
        (t / "archives/partial").mkdir(parents=True)
        (t / "sources.list").write_text(f"deb {DEBIAN_MIRROR} trixie main\n")
        opts = [f"-oDir::Etc::sourcelist={t}/sources.list", "-oDir::Etc::sourceparts=-",
                f"-oDir::State::Lists={t}/lists", f"-oDir::Cache::archives={t}/archives",
                "-oAPT::Sandbox::User=root"]
        subprocess.run(["apt-get", *opts, "-qq", "update"], check=True, capture_output=True)
        subprocess.run(["apt-get", *opts, "-qq", "download", "docker-compose"], check=True, capture_output=True, cwd=t)
        deb = next(t.glob("docker-compose_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(t / "x")], check=True)
        STATE.mkdir(parents=True, exist_ok=True)
        shutil.copy2(t / "x/usr/libexec/docker/cli-plugins/docker-compose", target)
    return target


def _base_image(log: Log) -> None:
    if _image_exists(BASE_IMAGE):
        return
    with progress(log, f"debootstrapping {BASE_IMAGE} (about 30 s)"), \
            tempfile.TemporaryDirectory(prefix="hostprep-rootfs-") as root:
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root, DEBIAN_MIRROR],
                       check=True, capture_output=True)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([_docker_bin(), "import", "-", BASE_IMAGE], stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()


def host_image(init: str, compose: str) -> str:
    """The lab host image for a way of booting and a Compose flavour."""
    return f"hostprep-lab/host-systemd:{compose}" if init == "systemd" else f"hostprep-lab/host:{compose}"


def build(log: Log = print) -> None:
    """Build every lab image that is missing; cached layers make a rebuild take seconds."""
    STATE.mkdir(parents=True, exist_ok=True)
    _base_image(log)
    plugin = _compose_v2_binary(log)
    with tempfile.TemporaryDirectory() as ctx:
        for f in ("Dockerfile", "lab-init", "lab-dockerd-restart"):
            shutil.copy2(LAB_DIR / "host" / f, Path(ctx) / f)
        shutil.copy2(plugin, Path(ctx) / "docker-compose-v2")
        for flavour in ("v2", "v1"):
            with progress(log, f"building hostprep-lab/host:{flavour}"):
                docker("build", "-q", "--build-arg", f"COMPOSE={flavour}", "-t", f"hostprep-lab/host:{flavour}", ctx)
    for flavour in ("v2", "v1"):
        with progress(log, f"building {host_image('systemd', flavour)}"):
            docker("build", "-q", "--build-arg", f"COMPOSE={flavour}", "-t", host_image("systemd", flavour),
                   str(LAB_DIR / "host_systemd"))
    with progress(log, f"building {AIRFLOW_BASE_IMAGE}"):
        docker("build", "-q", "-t", AIRFLOW_BASE_IMAGE, str(LAB_DIR / "worker"))
    tar = STATE / "airflow-base.tar"
    image_id = docker("image", "inspect", "-f", "{{.Id}}", AIRFLOW_BASE_IMAGE).stdout.decode().strip()
    stamp = STATE / "airflow-base.id"
    if not tar.exists() or not stamp.exists() or stamp.read_text() != image_id:
        with progress(log, f"saving {AIRFLOW_BASE_IMAGE} for the hosts"):
            docker("save", "-o", str(tar), AIRFLOW_BASE_IMAGE)
        stamp.write_text(image_id)


def _ensure_key() -> str:
    if not KEY.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hostprep-lab", "-f", str(KEY)], check=True)
    return KEY.with_suffix(".pub").read_text().strip()


# ---------------------------------------------------------------- hosts

def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port whose last connections sit in TIME-WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _trust_key(h: LabHost, pubkey: str) -> None:
    """Make the host trust this checkout's lab key (a host made by another checkout has that one's)."""
    docker("exec", "-i", h.container, "sh", "-c", "cat > /home/ubuntu/.ssh/authorized_keys",
           input=(pubkey + "\n").encode())


def _start_container(h: LabHost, pubkey: str) -> None:
    state = docker("inspect", "-f", "{{.State.Running}}", h.container, check=False)
    if state.returncode == 0 and h.init != INIT:  # booted the other way: start it again as asked
        docker("rm", "-f", h.container)
        docker("volume", "rm", h.volume, check=False)
        state = docker("inspect", "-f", "{{.State.Running}}", h.container, check=False)
    if state.returncode == 0 and state.stdout.decode().strip() == "true":
        _trust_key(h, pubkey)   # reused: it may have been made by another checkout, with its key
        return
    if state.returncode == 0:  # a stopped leftover: start clean, engine state included
        docker("rm", "-f", h.container)
        docker("volume", "rm", h.volume, check=False)
    if not _port_free(h.port):
        raise RuntimeError(f"{h.name}: 127.0.0.1:{h.port} is in use; set HOSTPREP_LAB_PORT_BASE")
    docker(
        "run", "-d", "--name", h.container, "--hostname", f"ip-10-0-0-{h.slot}",
        "--label", "hostprep.lab=host", "--label", f"hostprep.lab.index={h.slot}",
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--device-cgroup-rule=a *:* rwm", "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup",
        "-v", f"{h.volume}:/var/lib/docker", "-p", f"127.0.0.1:{h.port}:22",
        "-e", f"DOCKER_GID={h.docker_gid}", "-e", f"LAB_PUBKEY={pubkey}", "--label", f"hostprep.lab.init={INIT}",
        *(("--tmpfs", "/run", "--tmpfs", "/run/lock") if INIT == "systemd" else ()),
        host_image(INIT, h.compose),
    )


def _wait_ready(h: LabHost, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if h.exec("docker version >/dev/null 2>&1 && test -S /var/run/docker.sock && pgrep -x sshd", check=False):
            return
        if docker("inspect", "-f", "{{.State.Running}}", h.container, check=False).stdout.strip() != b"true":
            logs = docker("logs", "--tail", "30", h.container, check=False)
            raise RuntimeError(f"{h.name}: container exited: {logs.stderr.decode()}")
        time.sleep(0.3)
    failed = h.exec("systemctl --failed --no-legend --plain 2>/dev/null; journalctl -b -u lab-boot --no-pager 2>/dev/null"
                    " | tail -n 5", check=False) if h.init == "systemd" else ""
    raise RuntimeError(f"{h.name}: dockerd/sshd not ready after {timeout}s {failed.strip()}")


def reboot(h: LabHost, timeout: float = 90) -> float:
    """Reboot a lab host (restart its container: systemd shuts down on SIGRTMIN+3 and boots again); the seconds
    until sshd and Docker answer. Its disk, host keys and Docker's data stay; /run is new."""
    started = time.monotonic()
    docker("restart", "-t", "20", h.container)
    _wait_ready(h, timeout)
    # its boot trusts the key of the checkout that made it (LAB_PUBKEY); a reused host must keep trusting ours
    _trust_key(h, _ensure_key())
    return time.monotonic() - started


def _project_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for src, dst in (("docker-compose.yaml", "docker-compose.yaml"), ("Dockerfile", "Dockerfile"), ("env", ".env")):
            data = (LAB_DIR / "airflow" / src).read_bytes()
            info = tarfile.TarInfo(dst)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


RESET_SCRIPT = """
set -e
# the docker group and socket as the lab chose them; no hostprep state
fresh=
if [ -d /run/systemd/system ]; then   # Docker's units as the package ships them, and up
    if [ -d /etc/systemd/system/docker.socket.d ] || [ -d /etc/systemd/system/docker.service.d ]; then
        rm -rf /etc/systemd/system/docker.socket.d /etc/systemd/system/docker.service.d
        systemctl daemon-reload; fresh=1
    fi
    { systemctl is-active -q docker.socket && systemctl is-active -q docker.service; } || /usr/local/sbin/lab-docker-start
fi
if [ "$(getent group docker | cut -d: -f3)" != "$GID" ]; then groupmod -g "$GID" docker; fi
if [ -n "$fresh" ] || [ "$(stat -c %g /var/run/docker.sock)" != "$GID" ]; then $RECREATE; fi
chown root:docker /var/run/docker.sock && chmod 660 /var/run/docker.sock
setfacl -b /var/run/docker.sock 2>/dev/null || true
rm -rf /var/lib/hostprep
"""

PRISTINE_SCRIPT = RESET_SCRIPT + """
docker image inspect hostprep-lab/airflow-base:latest >/dev/null 2>&1 || { echo NEED_BASE_IMAGE; exit 3; }
# the Compose project exactly as shipped
mkdir -p /opt/airflow && cd /opt/airflow
find . -mindepth 1 -maxdepth 1 ! -name dags ! -name logs ! -name plugins ! -name config -exec rm -rf {} +
tar -xf -
mkdir -p dags logs plugins config
rm -f dags/hostprep_test_*.py   # DAG files a test planted (the posture and proxy audit tests)
chown 50000:0 dags logs plugins config && chmod 755 dags logs plugins config
$COMPOSE build -q $SERVICES >/tmp/lab-build.log 2>&1 || $COMPOSE build $SERVICES >/tmp/lab-build.log 2>&1
$COMPOSE up -d --remove-orphans $SERVICES >/tmp/lab-up.log 2>&1
"""


def provision_pristine(h: LabHost, log: Log = print) -> None:
    """Bring a lab host's Airflow project, docker group and socket to the lab's initial state."""
    env = f"GID={h.docker_gid} COMPOSE='{h.compose_cmd}' SERVICES='{SERVICES}' RECREATE={h.socket_recreate}"
    if h.real:
        from tests.lab import real_airflow

        h.exec(f"{env}; export GID COMPOSE RECREATE;" + RESET_SCRIPT)
        real_airflow.setup_host(h.container, h.compose_cmd, log)
        return
    with progress(log, f"{h.name}: pristine reset (compose build and up)"):
        proc = docker("exec", "-i", h.container, "sh", "-c", f"{env}; export GID COMPOSE SERVICES RECREATE;" + PRISTINE_SCRIPT,
                      input=_project_tar(), check=False)
        if proc.returncode == 3:
            with progress(log, f"{h.name}: loading {AIRFLOW_BASE_IMAGE}"):
                docker("exec", "-i", h.container, "docker", "load", "-q", input=(STATE / "airflow-base.tar").read_bytes())
            proc = docker("exec", "-i", h.container, "sh", "-c", f"{env}; export GID COMPOSE SERVICES RECREATE;" + PRISTINE_SCRIPT,
                          input=_project_tar(), check=False)
    if proc.returncode != 0:
        logs = h.exec("cat /tmp/lab-build.log /tmp/lab-up.log 2>/dev/null", check=False)
        raise RuntimeError(f"{h.name}: pristine setup failed: {proc.stderr.decode()[-1500:]}\n{logs[-1500:]}")


def _host_key_line(h: LabHost) -> str:
    key = h.exec("cat /etc/ssh/ssh_host_ed25519_key.pub").split()
    return f"[127.0.0.1]:{h.port} {key[0]} {key[1]}"


def write_known_hosts_and_inventory(lab_hosts: list[LabHost]) -> None:
    """known_hosts from keys read out of band (docker exec), and inventories/lab.yml."""
    KNOWN_HOSTS.write_text("".join(_host_key_line(h) + "\n" for h in lab_hosts))
    inv = {
        "all": {
            "vars": {
                "ansible_user": "ubuntu",
                "ansible_ssh_private_key_file": str(KEY),
                "hostprep_known_hosts_file": str(KNOWN_HOSTS),
                "hostprep_proxy_image": "hostprep-lab/docker-proxy:v1",   # tests/lab/docker_proxy.py builds it
            },
            "children": {
                "lab": {
                    "vars": {"hostprep_proxy_guard_image": "hostprep-lab/docker-guard:v1"},   # no python3 in the stand-in worker
                    "children": {
                        "compose_v2": {"hosts": {h.name: _inv_host(h) for h in lab_hosts if h.compose == "v2" and not h.real}},
                        "compose_v1": {"hosts": {h.name: _inv_host(h) for h in lab_hosts if h.compose == "v1" and not h.real}},
                    }
                },
                "real_airflow": {
                    "hosts": {h.name: _inv_host(h) for h in lab_hosts if h.real},
                    # real_airflow.CHECK_DAG_ID:SMOKE_TASK (a paused DAG: `tasks test` never races the scheduler)
                    "vars": {"hostprep_smoke_dag": "hostprep_check:fetch"},
                },
            },
        }
    }
    INVENTORY.parent.mkdir(parents=True, exist_ok=True)
    INVENTORY.write_text("# Generated by `invoke lab.up`; do not edit.\n" + yaml.safe_dump(inv, sort_keys=False))


def _inv_host(h: LabHost) -> dict[str, object]:
    return {"ansible_host": "127.0.0.1", "ansible_port": h.port}


def up(n: int = 2, log: Log = print, workers: int = 8, real: int = 0) -> list[LabHost]:
    """Build what is missing, start n light lab hosts (and ``real`` real-Airflow hosts), all pristine."""
    build(log)
    if real:
        from tests.lab import real_airflow

        real_airflow.build_image(log)
    pubkey = _ensure_key()
    lab_hosts = hosts(n, real)

    def one(h: LabHost) -> None:
        _start_container(h, pubkey)
        _wait_ready(h)
        provision_pristine(h, log)
        log(f"{h.name}: up on 127.0.0.1:{h.port} (compose {h.compose}, docker gid {h.docker_gid})")

    with ThreadPoolExecutor(max_workers=min(workers, n)) as pool:
        list(pool.map(one, lab_hosts))
    write_known_hosts_and_inventory(lab_hosts)
    return lab_hosts


def down(log: Log = print) -> None:
    """Remove the lab's containers, their docker volumes and the lab's network, nothing else."""
    out = docker("ps", "-a", "--filter", "label=hostprep.lab=host", "--format", "{{.Names}}").stdout.decode().split()
    for name in out:
        if name.startswith(PREFIX + "-"):
            docker("rm", "-f", "-v", name, check=False)
            docker("volume", "rm", f"{name}-docker", check=False)
            log(f"removed {name}")
    net = f"{PREFIX}-net"   # the lab's network (remote-tls's tests make it); only this name, only a lab's
    if docker("network", "inspect", "-f", '{{index .Labels "hostprep.lab"}}', net, check=False).stdout.decode().strip() == "net":
        docker("network", "rm", net, check=False)
        log(f"removed network {net}")
    INVENTORY.unlink(missing_ok=True)
    KNOWN_HOSTS.unlink(missing_ok=True)


def status() -> list[dict[str, str]]:
    """One row per lab container: name, state, port."""
    out = docker("ps", "-a", "--filter", "label=hostprep.lab=host",
                 "--format", "{{.Names}}\t{{.Status}}\t{{.Ports}}").stdout.decode()
    rows = []
    for line in out.splitlines():
        name, state, ports = (line.split("\t") + ["", ""])[:3]
        rows.append({"container": name, "status": state, "ports": ports})
    return sorted(rows, key=lambda r: r["container"])
