"""Any Ansible inventory source: plugin files (``*.aws_ec2.yml``), scripts and directories.

Plain YAML/INI files keep hostprep's own parser (``inventory.load_inventory``). Everything
else is read through ``ansible-inventory --list``, the JSON inventory protocol: Ansible stays
the engine that runs plugins, ``compose``, ``keyed_groups`` and caching, and hostprep
converts its answer with the same rules as a static file (the become-password rule, group
membership, inventory order). Host names from such a source come from cloud tags that
other people can set: each must be a safe host name, or the whole source is refused.

>>> is_plugin_config("plugin: amazon.aws.aws_ec2\\nregions: [eu-west-1]\\n")
True
>>> inv = from_inventory_json({"_meta": {"hostvars": {"i-0a1": {"ansible_port": 2201}}},
...                            "all": {"children": ["ungrouped", "tag_Role_airflow_worker"]},
...                            "tag_Role_airflow_worker": {"hosts": ["i-0a1"]}}, Path("prod.aws_ec2.yml"))
>>> inv.hosts["i-0a1"]
<HostEntry i-0a1 groups=tag_Role_airflow_worker>
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from hostprep.inventory.hosts import Inventory, InventoryError, _Builder, load_inventory
from hostprep.inventory.settings import valid_host_name

INSTALL_HINT = "pip install 'hostprep[ec2]'"
_STATIC_SUFFIXES = (".yml", ".yaml", ".json", ".ini", ".cfg", ".txt")
_PLUGIN_KEY = re.compile(r"^plugin\s*:\s*\S", re.M)
# Safe host names: what OpenSSH 9.6 would accept in %h, and nothing a shell or a path reads specially.
_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_FAILED_WITH = re.compile(r"Failed to parse inventory with '([\w.]+)' plugin: (.*)")
_FALLBACK_PLUGINS = ("yaml", "ini", "toml", "host_list")  # they answer every source Ansible could not read
DEFAULT_TIMEOUT = 300.0


def load_any(path: str | os.PathLike[str]) -> Inventory:
    """A static YAML/INI file with hostprep's parser; any other source through ``ansible-inventory``."""
    p = Path(path)
    return load_dynamic(p) if is_dynamic(p) else load_inventory(p)


def is_dynamic(path: Path) -> bool:
    """A directory, an executable script, or a YAML file that configures an inventory plugin."""
    if path.is_dir():
        return True
    suffix = path.suffix.lower()
    if suffix not in _STATIC_SUFFIXES and path.is_file() and os.access(path, os.X_OK):
        return True
    if suffix in (".yml", ".yaml"):
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                return is_plugin_config(fh.read(65536))
        except OSError:
            return False  # the static loader reports it
    return False


def is_plugin_config(text: str) -> bool:
    """A top-level ``plugin:`` key: Ansible's ``auto`` plugin hands the file to that plugin."""
    return bool(_PLUGIN_KEY.search(text))


def load_dynamic(path: Path, *, timeout: float | None = None) -> Inventory:
    """Run ``ansible-inventory --list`` on the source and convert its JSON; errors are one line."""
    return from_inventory_json(ansible_inventory_json(path, timeout=timeout), path)


def ansible_inventory_command() -> str | None:
    """``ansible-inventory`` beside this Python (the same virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / "ansible-inventory"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("ansible-inventory")


def ansible_inventory_json(path: Path, *, timeout: float | None = None) -> Any:
    """The source's inventory as Ansible's JSON protocol gives it; a failing source is an error."""
    exe = ansible_inventory_command()
    if exe is None:
        raise InventoryError(f"{path}: a dynamic inventory source is read with Ansible's ansible-inventory, "
                             f"which is not installed: {INSTALL_HINT}")
    env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED="True", ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="True",
               ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    limit = timeout or float(os.environ.get("HOSTPREP_INVENTORY_TIMEOUT") or DEFAULT_TIMEOUT)
    try:
        proc = subprocess.run([exe, "-i", str(path), "--list"], capture_output=True, env=env, timeout=limit,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InventoryError(f"{path}: ansible-inventory gave no answer within {limit:.0f} s "
                             "(is the API endpoint reachable?)") from None
    if proc.returncode != 0:
        raise InventoryError(f"{path}: {source_failure(proc.stderr.decode('utf-8', 'replace'))}")
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise InventoryError(f"{path}: ansible-inventory did not print a JSON inventory") from None


def source_failure(stderr: str) -> str:
    """One line saying why ``ansible-inventory`` failed on a source, from its stderr.

    >>> source_failure("[WARNING]: Failed to parse inventory with 'auto' plugin: Failed to describe "
    ...                "instances: Unable to locate credentials\\n[ERROR]: Completely failed")
    'no AWS credentials (Failed to describe instances: Unable to locate credentials); set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance role applies'
    """
    failures = _FAILED_WITH.findall(stderr)
    claimed = [m for p, m in failures if p not in _FALLBACK_PLUGINS] or [m for _, m in failures]
    errors = [ln.partition("[ERROR]:")[2].strip() for ln in stderr.splitlines() if "[ERROR]:" in ln]
    why = _one_line(claimed[0] if claimed else errors[0] if errors else stderr.strip()[-300:] or "no message")
    low = why.lower()
    if "unable to locate credentials" in low or "nocredentialserror" in low:
        return (f"no AWS credentials ({why}); set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or run where an instance role applies")
    if "could not connect to the endpoint url" in low or "connect timeout on endpoint" in low:
        return f"cannot reach the API endpoint ({why}); check AWS_URL / endpoint_url, the region and the network"
    if ("unknown plugin" in low or "failed to import the required python library" in low
            or "requires boto3" in low or "botocore" in low and "import" in low):
        return f"the inventory plugin is not installed ({why}): {INSTALL_HINT}"
    return f"inventory source failed: {why}"


def _one_line(text: str, limit: int = 300) -> str:
    flat = _PRINTABLE.sub(" ", text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def from_inventory_json(data: Any, source: Path) -> Inventory:
    """Ansible's ``--list`` JSON -> an Inventory, under the rules a static file follows (pure).

    ``_meta.hostvars`` holds each host's merged vars; groups list their ``hosts`` and ``children``.
    Ansible marks values from plugins as unsafe (``{"__ansible_unsafe": value}``): they are plain
    data here, validated like any other value before a connection.
    """
    if not isinstance(data, Mapping):
        raise InventoryError(f"{source}: ansible-inventory's answer is not a JSON object")
    meta = data.get("_meta") or {}
    hostvars = meta.get("hostvars") if isinstance(meta, Mapping) else None
    if not isinstance(hostvars, Mapping):
        hostvars = {}
    b = _Builder(source)
    groups = {name: body or {} for name, body in data.items() if name != "_meta"}
    for name, body in groups.items():
        _group_name(name, source)
        if not isinstance(body, Mapping):
            b.error(None, f"group {_show(name)} in ansible-inventory's answer is not an object")
        b.add_group(name)
    for name, body in groups.items():
        for child in _names(body.get("children"), name, "children", source):
            b.add_group(_group_name(child, source))
            b.add_child(name, child, None)
        for host in _names(body.get("hosts"), name, "hosts", source):
            b.add_host(host_name(host, source), name, None, None)
        for key, value in (body.get("vars") or {}).items():
            b.set_group_var(name, key, unwrap(value), None)
    for host, own in hostvars.items():
        if host not in b.host_vars:
            b.add_host(host_name(host, source), "ungrouped", None, None)
        if not isinstance(own, Mapping):
            b.error(None, f"host {_show(host)}: vars are not an object")
        for key, value in own.items():
            b.set_host_var(host, key, unwrap(value), None)
    inventory = b.finish()
    if not inventory.hosts:
        raise InventoryError(f"{source}: the inventory source returned no hosts (check its filters, regions "
                             "and credentials' account)")
    return inventory


def host_name(name: Any, source: Path) -> str:
    """A host name from a dynamic source, full-match checked: no shell or path metacharacters."""
    if not valid_host_name(name):
        raise InventoryError(f"{source}: host name {_show(name)} from the inventory source is refused: host names "
                             "may only hold letters, digits and . _ - : (set `hostnames` in the plugin config to "
                             "instance-id or private-dns-name)")
    return name


def _group_name(name: Any, source: Path) -> str:
    if not isinstance(name, str) or not name or _PRINTABLE.search(name):
        raise InventoryError(f"{source}: group name {_show(name)} from the inventory source is refused")
    return name


def _names(value: Any, group: str, key: str, source: Path) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InventoryError(f"{source}: group {_show(group)}: {key} must be a list in ansible-inventory's answer")
    return value


def unwrap(value: Any) -> Any:
    """Drop Ansible's unsafe marking (``{"__ansible_unsafe": "x"}`` -> ``"x"``), at any depth."""
    if isinstance(value, Mapping):
        if len(value) == 1 and "__ansible_unsafe" in value:
            return unwrap(value["__ansible_unsafe"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def cloud_labels(vars: Mapping[str, Any]) -> dict[str, str]:
    """What identifies a cloud host to a person: its instance id and Name tag, when the source gave them.

    >>> cloud_labels({"instance_id": "i-0a1", "tags": {"Name": "airflow-worker-1\\x1b[2J"}})
    {'instance_id': 'i-0a1', 'name': 'airflow-worker-1 [2J'}
    """
    out: dict[str, str] = {}
    tags = vars.get("tags")
    for key, value in (("instance_id", vars.get("instance_id")),
                       ("name", tags.get("Name") if isinstance(tags, Mapping) else None)):
        if isinstance(value, str) and value.strip():
            out[key] = _one_line(value, 128)  # a tag anyone may set: printable only, never an escape sequence
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
