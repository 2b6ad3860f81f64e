"""Run a host-side script detached from its SSH session, follow it, and reconnect when the
connection drops (``runner.sh`` on the host).

The script and its values are stored root-only in the host's journal, ``runs/<id>/``, and started in
a session of their own (or a systemd unit): a dropped connection, a controller killed or timed out,
does not stop a change halfway. The controller follows the run's log; after a drop it reconnects
(``RECONNECTS`` tries) and reads the log again from its first byte, so the outcome it reports is the
one an uninterrupted run gives.
"""

from __future__ import annotations

import base64
import time
from typing import Mapping

from hostprep.errors import Unreachable
from hostprep.host.probe import host_script
from hostprep.host.journal import RUN_ID
from hostprep.layout import STATE_DIR
from hostprep.ssh.transport import CommandResult, Transport, script_invocation

RECONNECTS = 5
HOST_SET = ("STATE_DIR", "RUN_DIR", "RUN_ID")
DROPPED = (-1, 124)   # the channel closed without an exit status, or the controller's timeout hit


def run_detached(transport: Transport, run_id: str, script: str, env: Mapping[str, str], *,
                 timeout: float = 1800, backoff: float = 1.0) -> CommandResult:
    """Start ``script`` with ``env`` as run ``run_id`` on the host and follow it to its end.

    A reconnect is said in the output (``@@hostprep:reconnected N``); when every reconnect
    fails, :class:`Unreachable` says the run goes on on the host and where to look.
    """
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"{run_id!r} is not a run id")
    # where the run lives is the host's to say (STATE_DIR, RUN_DIR, RUN_ID: set by the launcher)
    _, assigns = script_invocation(script, {k: v for k, v in env.items() if k not in HOST_SET})
    text = (assigns + script).encode()
    mark = env.get("MARK", "")   # the run's marker nonce: the runner's own markers are said under it too
    launch = {"MODE": "launch", "STATE_DIR": STATE_DIR, "RUN_ID": run_id, "RUN_MODE": env.get("MODE", "?"),
              "RUN_B64": base64.b64encode(text).decode(), "RUN_SIZE": str(len(text)), "MARK": mark}
    try:
        res = transport.run_script(runner(), launch, sudo=True, timeout=timeout)
        if res.exit_code not in DROPPED:
            return res
    except Unreachable:
        pass
    return reattach(transport, run_id, timeout=timeout, backoff=backoff, mark=mark)


def reattach(transport: Transport, run_id: str, *, timeout: float = 1800, backoff: float = 1.0,
             mark: str = "") -> CommandResult:
    """Reconnect and follow run ``run_id`` to its end (its whole log, from the start)."""
    name = transport.endpoint.name
    last = "no answer"
    for attempt in range(1, RECONNECTS + 1):
        time.sleep(min(backoff * 2 ** (attempt - 1), 10.0))
        transport.close()
        try:
            res = transport.run_script(runner(), {"MODE": "follow", "STATE_DIR": STATE_DIR, "RUN_ID": run_id,
                                                  "MARK": mark}, sudo=True, timeout=timeout)
        except Unreachable as exc:
            last = str(exc)
            continue
        if res.exit_code not in DROPPED:
            said = f"@@hostprep:{mark + ':' if mark else ''}reconnected {attempt}\n"
            return CommandResult(res.command, res.exit_code, said + res.stdout,
                                 res.stderr, res.seconds)
        last = res.stderr.strip() or f"exit {res.exit_code}"
    raise Unreachable(f"{name}: connection lost during run {run_id} and {RECONNECTS} reconnects failed ({last}); "
                      f"the run goes on on the host: `hostprep status --host {name}` shows how it ended")


def runner() -> str:
    return host_script("runner.sh", package=__package__)
