"""Exceptions raised by the constellate core."""


class ConstellateError(Exception):
    """Base class for errors the user can act on."""


class InputError(ConstellateError):
    """Input (a file, a request, a flag) was refused; the message says why."""


class StoreError(ConstellateError):
    """The vector store could not be opened or answered with an error."""


class StoreBusy(StoreError):
    """The embedded store is open in another process (``constellate up`` or a worker on this data dir)."""


class ConfigError(ConstellateError):
    """Settings were refused; the message names the settings, never their values."""


class NotFound(InputError):
    """The cluster, ticket or run named does not exist (HTTP 404)."""


class LeaseLost(ConstellateError):
    """A run no longer owns the run lock (its lease ran out, or a newer run claimed the store): it
    stops writing and never switches."""


class Conflict(InputError):
    """The request is well formed but conflicts with the current state (HTTP 409): a cluster merged
    into itself, a filter naming two different clusters, tickets that are not where a split says."""
