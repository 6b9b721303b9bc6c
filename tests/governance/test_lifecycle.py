import pytest
from hypothesis import given
from hypothesis import strategies as st

from governance.errors import IllegalTransition
from governance.lifecycle import TERMINAL, TRANSITIONS, Action, next_status
from governance.models import Status


@given(st.sampled_from(list(Status)), st.sampled_from(list(Action)))
def test_every_move_follows_the_table_or_raises(status: Status, action: Action) -> None:
    if (status, action) in TRANSITIONS:
        assert next_status(status, action) == TRANSITIONS[(status, action)]
    else:
        with pytest.raises(IllegalTransition, match=action.value):
            next_status(status, action)


@given(st.lists(st.sampled_from(list(Action)), max_size=12))
def test_no_sequence_of_moves_leaves_a_final_state(actions: list[Action]) -> None:
    status = Status.draft
    for action in actions:
        try:
            status = next_status(status, action)
        except IllegalTransition:
            continue
    if status in TERMINAL:
        assert all(s != status for (s, _a) in TRANSITIONS)


def test_publication_needs_review_and_approval() -> None:
    status = Status.draft
    with pytest.raises(IllegalTransition):
        next_status(status, Action.publish)
    for action in (Action.submit, Action.approve, Action.publish):
        status = next_status(status, action)
    assert status == Status.published
    assert next_status(status, Action.supersede) == Status.superseded
    assert next_status(status, Action.retire) == Status.retired


def test_rejection_returns_to_draft() -> None:
    assert next_status(Status.in_review, Action.reject) == Status.draft
