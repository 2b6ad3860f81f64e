"""sudo on the host: ``sudo -n`` when no password is needed, else a password answered on the
same exec channel, only after sudo's own random prompt, never echoed (like Ansible's become).
"""

from __future__ import annotations

import os
import shlex
import socket

import paramiko

from hostprep.ssh.endpoint import Endpoint
from hostprep.errors import AuthFailed
from hostprep.ssh.exec import finish

NO_PASSWORD = "sudo -n -- "


def become_password(ep: Endpoint) -> str | None:
    """The sudo password from the env var the inventory names (None: passwordless sudo)."""
    name = ep.become_password_env
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise AuthFailed(f"{ep.name}: become password variable ${name} is not set")
    return value


def check_not_asked(ep: Endpoint, stderr: str) -> None:
    """A ``sudo -n`` that wanted a password is an authentication failure, not a command's failure."""
    if "sudo: a password is required" in stderr:
        raise AuthFailed(f"{ep.name}: sudo needs a password; set ansible_become_password to an env lookup")


def exec_become(ep: Endpoint, chan: paramiko.Channel, command: str, password: str, stdin: str | None,
                timeout: float | None) -> tuple[int, str, str]:
    """sudo that asks for a password, on one exec channel.

    The password is written only after sudo shows its own (random) prompt, and stdin only
    after the shell behind sudo says it runs, so sudo never reads the payload as a password.
    A second prompt means the password was refused: stop there. Nothing sudo prints before
    the command starts is returned as the command's output, and sudo -S never echoes.
    """
    token = os.urandom(8).hex()
    prompt, ready = f"[hostprep-sudo-{token}]", f"@@hostprep:become-{token}"
    try:
        chan.set_combine_stderr(True)   # the prompt goes to stderr, the marker to stdout
        # the shell behind sudo says it runs, then waits for one line before the command starts
        inner = f"echo {ready}; read -r _go; {command}"
        chan.exec_command(f"sudo -S -p {shlex.quote(prompt)} -- /bin/sh -c {shlex.quote(inner)}")
        chan.settimeout(ep.connect_timeout + 30)
        early = _answer_prompt(ep, chan, prompt, ready, password)
        if early is not None:   # sudo gave up before the command started
            return chan.recv_exit_status(), "", early
        chan.set_combine_stderr(False)   # before the go-ahead: the command has printed nothing yet
        chan.sendall(b"\n")
        return finish(chan, stdin, timeout)
    finally:
        chan.close()


def _answer_prompt(ep: Endpoint, chan: paramiko.Channel, prompt: str, ready: str, password: str) -> str | None:
    """Read until the shell behind sudo is ready, answering sudo's prompt once; what sudo said if it quit."""
    seen, answered = b"", False
    try:
        while ready.encode() + b"\n" not in seen:
            data = chan.recv(4096)
            if not data:
                return seen.decode(errors="replace")
            seen += data
            prompts = seen.count(prompt.encode())
            if prompts > 1:
                raise AuthFailed(f"{ep.name}: sudo refused the become password")
            if prompts and not answered:
                chan.sendall(password.encode() + b"\n")
                answered = True
    except socket.timeout:
        raise AuthFailed(f"{ep.name}: sudo did not start the command (no answer)") from None
    return None
