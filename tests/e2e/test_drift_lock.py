"""The per-environment write lock: two writers on one environment never interleave.

These tests run real flows against the session's Prefect test server (tests/e2e/conftest.py),
because the lock is a global concurrency limit that lives on the server. The writers here are
stand-ins that only record when they hold the lock; tests/e2e/test_deployments.py starts two real
provision runs at once through a worker.
"""

from __future__ import annotations

import threading
import time

import pytest
from prefect import flow, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

from tasks.locks import LockUnavailable, environment_lock, holds_lock, lock_name

pytestmark = pytest.mark.prefect


def _run_in_threads(*targets: object) -> None:
    threads = [threading.Thread(target=target) for target in targets]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a writer never finished: the lock deadlocked"


def test_two_writers_on_one_environment_never_interleave() -> None:
    journal: list[tuple[str, str]] = []
    both_started = threading.Barrier(2)

    @flow(name="writer")
    def writer(who: str) -> None:
        both_started.wait(timeout=30)
        with environment_lock("lock-test-one", purpose=who):
            journal.append(("enter", who))
            # Long enough that an unguarded second writer would surely enter meanwhile.
            time.sleep(0.5)
            journal.append(("leave", who))

    _run_in_threads(lambda: writer("provision"), lambda: writer("teardown"))

    assert len(journal) == 4
    first, second = journal[0][1], journal[2][1]
    assert {first, second} == {"provision", "teardown"}
    assert journal == [("enter", first), ("leave", first), ("enter", second), ("leave", second)]


def test_writers_on_different_environments_run_side_by_side() -> None:
    # Each writer waits, while holding its own environment's lock, for the other to hold its lock
    # too; that only finishes when the two locks are independent.
    both_inside = threading.Barrier(2)
    reached: list[str] = []

    @flow(name="writer")
    def writer(environment: str) -> None:
        with environment_lock(environment, purpose="provision"):
            both_inside.wait(timeout=20)
            reached.append(environment)

    _run_in_threads(lambda: writer("lock-test-a"), lambda: writer("lock-test-b"))

    assert sorted(reached) == ["lock-test-a", "lock-test-b"]


def test_a_run_holding_the_lock_may_take_it_again_without_waiting_for_itself() -> None:
    @flow(name="repair")
    def repair() -> bool:
        with environment_lock("lock-test-nested", purpose="drift repair", wait_seconds=5):
            return nested()

    @flow(name="provision")
    def nested() -> bool:
        with environment_lock("lock-test-nested", purpose="provision", wait_seconds=5):
            return holds_lock("lock-test-nested")

    assert repair() is True
    assert not holds_lock("lock-test-nested")


def test_a_writer_that_waits_too_long_gives_up_with_what_to_do() -> None:
    holding = threading.Event()
    done = threading.Event()

    @flow(name="holder")
    def holder() -> None:
        with environment_lock("lock-test-busy", purpose="provision"):
            holding.set()
            done.wait(timeout=30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        with (
            pytest.raises(LockUnavailable, match="another run has held the write lock"),
            environment_lock("lock-test-busy", purpose="teardown", wait_seconds=1),
        ):
            pytest.fail("entered a lock that another run holds")
    finally:
        done.set()
        thread.join(timeout=30)


def test_a_lock_widened_to_two_slots_is_refused_rather_than_shared() -> None:
    with environment_lock("lock-test-widened", purpose="provision"):
        pass
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(
            lock_name("lock-test-widened"), GlobalConcurrencyLimitUpdate(limit=2)
        )

    with (
        pytest.raises(LockUnavailable, match="exactly one slot"),
        environment_lock("lock-test-widened", purpose="provision"),
    ):
        pytest.fail("wrote under a lock that lets two writers in")
