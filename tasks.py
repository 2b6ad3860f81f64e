"""hostprep's front door: `invoke --list`. Tasks parse arguments and call the library."""

from __future__ import annotations

from invoke import Collection, task

from tests.lab import lab as _lab


@task(help={"hosts": "number of lab hosts to start (default 2)"})
def lab_up(c, hosts=2):
    """Build what is missing and start N lab hosts (sshd on 127.0.0.1, own dockerd, Airflow Compose)."""
    _lab.up(int(hosts))
    print(f"inventory: {_lab.INVENTORY}")


@task
def lab_down(c):
    """Remove the lab hosts and their volumes (only what the lab created)."""
    _lab.down()


@task
def lab_status(c):
    """Show the lab hosts and their ports."""
    rows = _lab.status()
    if not rows:
        print("no lab hosts")
    for r in rows:
        print(f"{r['container']:<20} {r['status']:<28} {r['ports']}")


lab_ns = Collection("lab")
lab_ns.add_task(lab_up, "up")
lab_ns.add_task(lab_down, "down")
lab_ns.add_task(lab_status, "status")

ns = Collection()
ns.add_collection(lab_ns)
