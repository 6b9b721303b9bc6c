"""The article-version lifecycle, expressed once as a transition table."""

from enum import StrEnum

from governance.errors import IllegalTransition
from governance.models import Status


class Action(StrEnum):
    submit = "submit"
    approve = "approve"
    reject = "reject"
    publish = "publish"
    supersede = "supersede"
    retire = "retire"


TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.draft, Action.submit): Status.in_review,
    (Status.in_review, Action.approve): Status.approved,
    (Status.in_review, Action.reject): Status.draft,
    (Status.approved, Action.publish): Status.published,
    (Status.published, Action.supersede): Status.superseded,
    (Status.published, Action.retire): Status.retired,
    # A newer version replaces one still on its way to publication.
    (Status.draft, Action.supersede): Status.superseded,
    (Status.in_review, Action.supersede): Status.superseded,
    (Status.approved, Action.supersede): Status.superseded,
}

TERMINAL: frozenset[Status] = frozenset({Status.superseded, Status.retired})


def next_status(current: Status, action: Action) -> Status:
    """The status `action` leads to from `current`, or IllegalTransition."""
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s == current)
        raise IllegalTransition(
            f"cannot {action.value} a version that is {current.value}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else " (it is final)")
        ) from None
