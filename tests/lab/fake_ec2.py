"""A fake EC2 API on 127.0.0.1: moto's server as a process, with instances whose tags point at lab hosts.

The amazon.aws.aws_ec2 inventory plugin talks to it over HTTP exactly as to AWS (``AWS_URL``
is the plugin's ``endpoint_url``), so ``ansible-inventory`` really runs the plugin.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

REGION = "eu-west-1"
LAB_FILE = Path(__file__).resolve().parent / "ec2" / "lab.aws_ec2.yml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class FakeEC2:
    """A running moto server: its URL, and the environment that points AWS clients (and the plugin) at it."""

    url: str

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self) -> Any:
        import boto3

        return boto3.client("ec2", region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def launch(self, tags: dict[str, str], count: int = 1, *, stopped: bool = False) -> list[str]:
        """Start ``count`` instances with these tags (stopped ones are stopped after launch); their ids."""
        ec2 = self.client()
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        got = ec2.run_instances(ImageId=image, MinCount=count, MaxCount=count, InstanceType="t3.large",
                                TagSpecifications=[{"ResourceType": "instance",
                                                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
        ids = [i["InstanceId"] for i in got["Instances"]]
        if stopped:
            ec2.stop_instances(InstanceIds=ids)
        return ids

    def terminate_all(self) -> None:
        ec2 = self.client()
        ids = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        if ids:
            ec2.terminate_instances(InstanceIds=ids)


@contextlib.contextmanager
def moto_server(log_file: Path | None = None) -> Iterator[FakeEC2]:
    """``python -m moto.server`` on a free loopback port, until the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url} (exit {proc.poll()})") from None
                time.sleep(0.2)
        yield FakeEC2(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_file:
            out.close()  # type: ignore[union-attr]
