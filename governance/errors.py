"""One exception hierarchy for Canon. HTTP and CLI map these in one place each."""


class CanonError(Exception):
    """Base of every error Canon raises on purpose."""

    code = "canon_error"


class InvalidInput(CanonError):
    """The caller's input (a file, a field, a request) is malformed."""

    code = "invalid_input"


class NotFound(CanonError):
    code = "not_found"


class IllegalTransition(CanonError):
    """A lifecycle move that the transition table does not allow."""

    code = "illegal_transition"


class PermissionDenied(CanonError):
    """A role rule or separation-of-duties rule forbids the action."""

    code = "permission_denied"


class Conflict(CanonError):
    """The version changed under the caller (stale revision)."""

    code = "conflict"


class IndexUnavailable(CanonError):
    """The vector index cannot be opened or reached."""

    code = "index_unavailable"


class Unauthenticated(CanonError):
    """No key, an unknown key or a revoked key."""

    code = "unauthenticated"


class PreconditionRequired(CanonError):
    """A write that must name the revision it acts on (If-Match) did not."""

    code = "precondition_required"
