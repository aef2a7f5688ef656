"""The one process pool (facecluster.run.pool): every task answered once, a
worker's death costing only the task that caused it."""

from __future__ import annotations

import os
import time

import pytest

from facecluster.run.pool import KILLED, STALLED, in_pool

# Workers are forked from the test process, so these module-level functions
# reach them by name.
DEADLY = {3, 7}


def square_or_die(number: int) -> int:
    if number in DEADLY:
        os._exit(11)  # as a segfaulting decoder would
    return number * number


def squares_or_die(batch: list[int]) -> list[int]:
    return [square_or_die(number) for number in batch]


HANGING = {5}


def square_or_hang(number: int) -> int:
    if number in HANGING:
        time.sleep(3600)  # as a decoder caught in a loop would
    return square_or_die(number)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_task_is_answered_once_and_only_the_killers_are_killed(workers: int) -> None:
    answers = list(in_pool(square_or_die, range(12), workers))
    assert sorted(task for task, _ in answers) == list(range(12))
    assert dict(answers) == {n: KILLED if n in DEADLY else n * n for n in range(12)}


def test_a_batch_that_kills_is_split_and_only_its_killer_lost() -> None:
    batches = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    answers = list(in_pool(squares_or_die, batches, 2, split=lambda batch: [[n] for n in batch]))
    killed = [batch for batch, result in answers if result is KILLED]
    assert sorted(killed) == [[3], [7]]
    answered = sorted(n for batch, result in answers if result is not KILLED for n in batch)
    assert answered == sorted(set(range(10)) - DEADLY)
    assert all(result == [n * n for n in batch] for batch, result in answers if result is not KILLED)

def test_a_task_that_hangs_is_given_up_and_the_rest_answered() -> None:
    """Nothing finishes for the stall limit: the tasks in flight are run alone, and only the one
    that hangs again is given up; no worker is left behind."""
    import psutil

    def our_processes() -> set[int]:  # other tests in this process may keep helpers of their own
        return {child.pid for child in psutil.Process().children(recursive=True)
                if child.status() != psutil.STATUS_ZOMBIE}

    before = our_processes()
    answers = list(in_pool(square_or_hang, range(10), 2, stall_seconds=2))
    assert sorted(task for task, _ in answers) == list(range(10))
    assert dict(answers) == {n: STALLED if n in HANGING else KILLED if n in DEADLY else n * n for n in range(10)}
    deadline = time.monotonic() + 10  # a killed worker may take a moment to go
    while our_processes() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert our_processes() - before == set()


def test_no_tasks_start_no_pool() -> None:
    assert list(in_pool(square_or_die, [], 2)) == []
