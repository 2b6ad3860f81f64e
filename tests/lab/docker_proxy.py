"""The lab's docker-socket-proxy image: Debian 12's haproxy in the upstream image's layout (no registry
to pull tecnativa/docker-socket-proxy from). Built on the controller, loaded into a lab host's dockerd."""

from __future__ import annotations

from tests.lab import lab

IMAGE = "hostprep-lab/docker-proxy:v1"   # named by the lab inventory's hostprep_proxy_image
SRC = lab.LAB_DIR / "proxy"


def build(log: lab.Log = print) -> None:
    """Build the image (cached layers: a second build takes about a second)."""
    with lab.progress(log, f"building {IMAGE}"):
        lab.docker("build", "-q", "-t", IMAGE, str(SRC))


def load_into(h: lab.LabHost, log: lab.Log = print) -> None:
    """Load the image into a lab host's own dockerd unless it is there with the same id."""
    want = lab.docker("image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.decode().strip()
    have = h.exec(f"docker image inspect -f '{{{{.Id}}}}' {IMAGE} 2>/dev/null", check=False).strip()
    if have == want:
        return
    with lab.progress(log, f"{h.name}: loading {IMAGE}"):
        tar = lab.docker("save", IMAGE).stdout
        lab.docker("exec", "-i", h.container, "docker", "load", "-q", input=tar)
