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
