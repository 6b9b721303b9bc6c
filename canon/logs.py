"""What the server logs: uvicorn's access line without the query string.

Questions travel in request bodies, which nothing logs; a client that puts one (or any
patient detail) in a URL's query string would otherwise have it written to the access
log. Keys travel in the Authorization header, which uvicorn never logs.
"""

import logging

ACCESS_LOGGER = "uvicorn.access"


class DropQueryString(logging.Filter):
    """Rewrites uvicorn's access record `(client, method, path?query, version, status)`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, _, query = args[2].partition("?")
            if query:
                record.args = (args[0], args[1], f"{path}?[query omitted]", *args[3:])
        return True


def redact_access_log() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, DropQueryString) for f in logger.filters):
        logger.addFilter(DropQueryString())
