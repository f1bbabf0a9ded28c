"""One helper for race tests: steps started together behind a barrier, each on its own
database connection, so they really overlap (a thread that starts late proves nothing)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def race(*steps: Callable[[], object]) -> list[BaseException | object]:
    """Run each step in its own thread, released at the same instant; returns what each
    returned or raised, in the order given."""
    barrier = threading.Barrier(len(steps))
    outcomes: list[BaseException | object] = [None] * len(steps)

    def run(index: int, step: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[index] = step()
        except BaseException as error:  # reported to the test, which decides
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(steps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def outcome_codes(outcomes: list[BaseException | object]) -> list[str]:
    """`race`'s outcomes as sorted words to compare with a list: "done" for a step that
    returned, a DomainError's code, and type and message of anything else raised (which
    no expected list names, so the test fails saying what happened)."""
    from portal.errors import DomainError

    def word(outcome: BaseException | object) -> str:
        if isinstance(outcome, DomainError):
            return outcome.code
        if isinstance(outcome, BaseException):
            return f"{type(outcome).__name__}: {outcome}"
        return "done"

    return sorted(word(o) for o in outcomes)
