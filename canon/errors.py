"""Where domain errors become HTTP statuses and CLI exit codes (one table each)."""

from governance.errors import (
    CanonError,
    Conflict,
    IllegalTransition,
    IndexUnavailable,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PreconditionRequired,
    Unauthenticated,
)

HTTP_STATUS: dict[type[CanonError], int] = {
    Unauthenticated: 401,
    InvalidInput: 422,
    NotFound: 404,
    PermissionDenied: 403,
    IllegalTransition: 409,
    Conflict: 409,
    PreconditionRequired: 428,
    IndexUnavailable: 503,
}

EXIT_CODE: dict[type[CanonError], int] = {
    Unauthenticated: 4,
    InvalidInput: 2,
    NotFound: 3,
    PermissionDenied: 4,
    IllegalTransition: 5,
    Conflict: 5,
    PreconditionRequired: 2,
    IndexUnavailable: 6,
}


def lookup(table: dict[type[CanonError], int], error: CanonError, default: int) -> int:
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]
    return default
