"""How long-running eval steps report progress: the CLI passes a rich bar, tests pass nothing."""

from collections.abc import Callable

Report = Callable[[str, int, int], None]  # (task, done, total)


def quiet(task: str, done: int, total: int) -> None:
    """The default reporter: says nothing."""
    return None
