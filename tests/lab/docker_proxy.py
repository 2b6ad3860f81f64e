"""The lab's docker-socket-proxy image: Debian 12's haproxy in the upstream image's layout (no registry
to pull tecnativa/docker-socket-proxy from). Built on the controller, loaded into a lab host's dockerd."""

from __future__ import annotations

from tests.lab import lab

IMAGE = "hostprep-lab/docker-proxy:v1"   # named by the lab inventory's hostprep_proxy_image
SRC = lab.LAB_DIR / "proxy"
GUARD_IMAGE = "hostprep-lab/docker-guard:v1"   # the light hosts' hostprep_proxy_guard_image (python3)
GUARD_SRC = lab.LAB_DIR / "guard"


def build(log: lab.Log = print) -> None:
    """Build the image (cached layers: a second build takes about a second)."""
    with lab.progress(log, f"building {IMAGE}"):
        lab.docker("build", "-q", "-t", IMAGE, str(SRC))
    with lab.progress(log, f"building {GUARD_IMAGE}"):
        lab.docker("build", "-q", "-t", GUARD_IMAGE, str(GUARD_SRC))


def load_into(h: lab.LabHost, log: lab.Log = print) -> None:
    """Load the images into a lab host's own dockerd unless they are there with the same id."""
    for image in (IMAGE, GUARD_IMAGE):
        _load(h, image, log)


def _load(h: lab.LabHost, image: str, log: lab.Log) -> None:
    want = lab.docker("image", "inspect", "-f", "{{.Id}}", image).stdout.decode().strip()
    have = h.exec(f"docker image inspect -f '{{{{.Id}}}}' {image} 2>/dev/null", check=False).strip()
    if have == want:
        return
    with lab.progress(log, f"{h.name}: loading {image}"):
        tar = lab.docker("save", image).stdout
        lab.docker("exec", "-i", h.container, "docker", "load", "-q", input=tar)
