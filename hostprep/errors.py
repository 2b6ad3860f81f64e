"""Errors shared across layers; this module imports nothing from hostprep.

Each lives here, at the bottom, so the modules that raise and the modules that catch
them need not import each other.
"""

from __future__ import annotations


class InventoryError(Exception):
    """The inventory cannot be read or used; the message names the file (and line)."""


class SettingsError(ValueError):
    """A host or group var has a value hostprep will not use."""


class TransportError(Exception):
    """A host could not be used: connection, authentication or become failed."""


class Unreachable(TransportError):
    """No SSH session could be opened (refused, timed out, no route)."""


class HostKeyRejected(TransportError):
    """The host's key is unknown (and accept-new is off) or has changed."""


class AuthFailed(TransportError):
    """SSH authentication or sudo (become) failed."""
