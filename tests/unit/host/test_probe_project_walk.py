"""The probe's read of the project (one no-follow walk for the project, its files and folders; one stat per
kind for the names directly in it), run locally with this machine's ``sh`` on a temp project: what each file
and folder reports, links and odd kinds refused, names elsewhere (a sub-folder's compose file, an absolute
bind folder) read on their own walk."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from hostprep.host.probe import host_script, probe_env, sections
from hostprep.inventory.settings import HostSettings
from tests.unit.change.test_apply_encoding import LocalShell


def probe(tmp_path: Path, settings: HostSettings) -> dict[str, str]:
    env = probe_env(settings, deep=False)
    res = LocalShell(tmp_path / "state").run_script(host_script("probe.sh"), env)
    assert "@@hostprep:end" in res.stdout, res.stderr
    return sections(res.stdout)


def stat_line(p: Path, fmt: str) -> str:
    st = p.lstat()
    fields = {"a": f"{st.st_mode & 0o7777:o}", "u": str(st.st_uid), "g": str(st.st_gid), "s": str(st.st_size)}
    return " ".join(fields[c] for c in fmt.split())


def test_every_file_and_folder_reads_as_before_whatever_mix_of_kinds(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    (proj / "docker-compose.yaml").write_text("services: {}\n")
    (proj / ".env").write_bytes(b"A=1\n\xff\n")
    os.chmod(proj / ".env", 0o600)
    (proj / "sub" / "compose.yaml").write_text("sub: 1\n")
    (tmp_path / "secret").write_text("root's\n")
    (proj / "Dockerfile").symlink_to(tmp_path / "secret")              # a link: refused, never read
    (proj / "docker-compose.override.yml").mkdir()                       # not a regular file
    (proj / "dags").mkdir()
    os.chmod(proj / "dags", 0o750)
    (proj / "logs").symlink_to(tmp_path)                                 # a link: refused
    (proj / "plugins").write_text("")                                    # not a folder
    elsewhere = tmp_path / "data"
    elsewhere.mkdir()
    settings = HostSettings(project_dir=str(proj), compose_file="sub/compose.yaml",
                            bind_dirs=("dags", "logs", "plugins", "config", str(elsewhere)))
    sec = probe(tmp_path, settings)
    assert sec["project"] == "exists"
    for name, path in (("docker-compose.yaml", proj / "docker-compose.yaml"), (".env", proj / ".env"),
                       ("sub/compose.yaml", proj / "sub" / "compose.yaml")):
        head, body = sec[f"file:{name}"].splitlines()
        assert head == stat_line(path, "a u g s") and base64.b64decode(body) == path.read_bytes()
    assert sec["file:Dockerfile"] == f"unsafe {proj}/Dockerfile is a symlink"
    assert sec["file:docker-compose.override.yml"] == f"unsafe {proj}/docker-compose.override.yml is not a regular file"
    assert sec["file:compose.yml"] == "" and sec["file:docker-compose.hostprep.yml"] == ""
    dirs = sorted(line for line in sec["bind_dirs"].splitlines() if not line.startswith("dags: "))
    assert dirs == sorted([f"dags {stat_line(proj / 'dags', 'u g a')}", f"logs unsafe {proj}/logs is a symlink",
                           f"plugins unsafe {proj}/plugins is not a directory", "config missing",
                           f"{elsewhere} {stat_line(elsewhere, 'u g a')}"])


def test_a_project_that_is_a_link_reads_as_unsafe_for_it_its_files_and_folders(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / ".env").write_text("A=1\n")
    (real / "dags").mkdir()
    (tmp_path / "proj").symlink_to(real)
    tmp_path.chmod(0o777)   # a folder others can change: a link in it is never followed (in a root-only one it is)
    sec = probe(tmp_path, HostSettings(project_dir=str(tmp_path / "proj")))
    why = f"{tmp_path}/proj: proj is a symlink"
    assert sec["project"] == f"unsafe {why}"
    assert sec["file:.env"] == f"unsafe {why}"
    assert f"dags unsafe {why}" in sec["bind_dirs"].splitlines()
