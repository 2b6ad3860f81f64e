"""The repository's `invoke --list`: hostprep's own tasks, plus the test lab and the benchmark.

The operator's tasks live in ``hostprep.cli.program`` (installed as the `hostprep` command); this file
only adds what needs the repository's tests/ tree.
"""

from __future__ import annotations

from invoke import Collection, task

from hostprep.cli.tasks import collection


@task(help={"hosts": "number of light lab hosts to start (default 2)",
            "real": "number of hosts running real Airflow with a DockerOperator DAG (default 0)"})
def lab_up(c, hosts=2, real=0):
    """Build what is missing and start N lab hosts (sshd on 127.0.0.1, own dockerd, Airflow Compose)."""
    from tests.lab import lab

    lab.up(int(hosts), real=int(real))
    print(f"inventory: {lab.INVENTORY}")


@task
def lab_down(c):
    """Remove the lab hosts and their volumes (only what the lab created)."""
    from tests.lab import lab

    lab.down()


@task
def lab_status(c):
    """Show the lab hosts and their ports."""
    from tests.lab import lab

    rows = lab.status()
    print("\n".join(f"{r['container']:<20} {r['status']:<28} {r['ports']}" for r in rows) or "no lab hosts")


@task(help={"host": "lab host name (default: all running lab hosts)"})
def lab_reset(c, host=None):
    """Put lab hosts back to their pristine, still-broken state."""
    from tests.lab import lab

    for h in lab.running_hosts():
        if host in (None, h.name):
            lab.provision_pristine(h)
            print(f"{h.name}: pristine")


@task(help={"hosts": "fleet sizes, comma-separated (default 10,30; add 100 if you have the time)",
            "repeats": "runs per tool and size, interleaved (default 5)",
            "keep": "leave the bench hosts running afterwards",
            "down": "only remove the bench hosts",
            "refuse_loaded": "do not count samples taken on a busy machine: over 25% of the cores busy with other "
                             "work just before (default: mark them)",
            "skip": "configurations left out, comma-separated: only ansible-tasks (slow at N=100) may be",
            "scale": "measure inventory loading instead: static files of 1,000 and 10,000 hosts, "
                     "and ansible-inventory on 300 EC2 instances in moto"})
def bench(c, hosts="10,30", repeats=5, keep=False, down=False, scale=False, refuse_loaded=False, skip=""):
    """Benchmark the audit against ansible-playbook and pyinfra on N light lab hosts."""
    from tests.benchmarks import bench as b

    if down:
        b.down()
        return
    if scale:
        from tests.benchmarks import scale as s

        print(s.main())
        return
    print(b.main([int(n) for n in str(hosts).split(",") if n], int(repeats), keep, refuse_loaded=refuse_loaded,
                 skip=b.skippable(skip)))


lab_ns = Collection("lab")
lab_ns.add_task(lab_up, "up")
lab_ns.add_task(lab_down, "down")
lab_ns.add_task(lab_status, "status")
lab_ns.add_task(lab_reset, "reset")

ns = collection()
ns.add_task(bench)
ns.add_collection(lab_ns)


