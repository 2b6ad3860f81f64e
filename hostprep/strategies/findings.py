"""What the audit reports: rules, findings and their fix hints; shared by the audit and the strategies.

A strategy contributes its own rules and judges its own drift with these types, so this module
sits below both and imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hostprep.host import compose
from hostprep.host.facts import Facts
from hostprep.layout import OVERRIDE_FILE

CRITICAL, WARNING = "critical", "warning"


@dataclass(frozen=True)
class Rule:
    """One audit check: what it guards, and whether `audit --fix` (a re-provision) can repair it."""

    id: str
    severity: str
    title: str
    fixable: bool = True


@dataclass(frozen=True)
class Finding:
    """One drift: which rule, about what (a folder name, or None), what was seen, and the fix."""

    rule: Rule
    detail: str
    hint: str
    subject: str | None = None

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def severity(self) -> str:
        return self.rule.severity

    @property
    def key(self) -> str:
        """Identity across runs, e.g. ``bind-dir-not-writable:logs``."""
        return f"{self.id}:{self.subject}" if self.subject else self.id

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "subject": self.subject,
                "detail": self.detail, "hint": self.hint}

    def __repr__(self) -> str:
        return f"<Finding {self.severity} {self.key}>"


def provision_hint(host: str, strategy: str | None = None) -> str:
    """The command that repairs a host (with the strategy to re-apply, if it matters)."""
    return f"invoke provision --host {host}" + (f" --strategy {strategy}" if strategy else "")


def override_document(facts: Facts) -> dict[str, Any] | None:
    """hostprep's override file, parsed; None when it is gone or no longer hostprep's."""
    f = facts.files.get(OVERRIDE_FILE)
    if f is None or not f.exists or compose.MANAGED_MARK not in (f.content or ""):
        return None
    try:
        return compose.load_compose(f.content, OVERRIDE_FILE)
    except compose.ComposeError:
        return None   # not hostprep's any more


def override_services(facts: Facts) -> dict[str, Any] | None:
    """The services in hostprep's override file; None when it is gone or no longer hostprep's."""
    doc = override_document(facts)
    if doc is None:
        return None
    services = doc.get("services")
    return services if isinstance(services, dict) else {}


def override_chain_broken(facts: Facts) -> str | None:
    """Why .env's COMPOSE_FILE no longer loads hostprep's override on the next `compose up`, or None."""
    chain = (facts.env.get("COMPOSE_FILE") or "").split(":")
    return None if OVERRIDE_FILE in chain else f"COMPOSE_FILE in .env no longer loads {OVERRIDE_FILE}"
