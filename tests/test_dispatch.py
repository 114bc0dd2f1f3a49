"""Many pykka actors on a few threads, with pykka's semantics intact."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from voicio.actors.dispatch import DispatchedActor, Dispatcher


class Recorder(DispatchedActor):
    def __init__(
        self,
        dispatcher: Dispatcher,
        log: list[tuple[int, int]],
        key: int,
        stopped: threading.Event | None = None,
        failed: threading.Event | None = None,
    ) -> None:
        super().__init__(dispatcher)
        self.log = log
        self.key = key
        self.stopped = stopped or threading.Event()
        self.failed = failed or threading.Event()

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        self.log.append((self.key, message))
        return message * 2

    def on_stop(self) -> None:
        self.stopped.set()

    def on_failure(self, *args: object) -> None:
        self.failed.set()


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    pool = Dispatcher("test", threads=4, throughput=3)
    yield pool
    pykka.ActorRegistry.stop_all(block=False)
    pool.shutdown()


def test_thousands_of_actors_share_the_dispatcher_threads(
    dispatcher: Dispatcher,
) -> None:
    before = threading.active_count()
    log: list[tuple[int, int]] = []
    refs = [Recorder.start(dispatcher, log, key) for key in range(2000)]

    answers = [ref.ask(7, timeout=10) for ref in refs]

    assert answers == [14] * 2000
    assert threading.active_count() == before


def test_each_actor_handles_its_messages_in_order(dispatcher: Dispatcher) -> None:
    log: list[tuple[int, int]] = []
    refs = [Recorder.start(dispatcher, log, key) for key in range(20)]

    for n in range(50):
        for ref in refs:
            ref.tell(n)
    for ref in refs:
        ref.ask(-1, timeout=10)

    for key in range(20):
        assert [n for k, n in log if k == key] == [*range(50), -1]


def test_an_ask_that_raises_reaches_the_caller_and_the_actor_lives(
    dispatcher: Dispatcher,
) -> None:
    ref = Recorder.start(dispatcher, [], 1)

    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=5)

    assert ref.ask(2, timeout=5) == 4


def test_a_tell_that_raises_stops_the_actor_and_runs_on_failure(
    dispatcher: Dispatcher,
) -> None:
    failed = threading.Event()
    ref = Recorder.start(dispatcher, [], 1, failed=failed)

    ref.tell("boom")

    assert failed.wait(5)
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(1)


def test_stop_runs_on_stop_and_answers_later_asks_with_actor_dead(
    dispatcher: Dispatcher,
) -> None:
    stopped = threading.Event()
    ref = Recorder.start(dispatcher, [], 1, stopped=stopped)

    assert ref.stop(timeout=5) is True

    assert stopped.is_set()
    with pytest.raises(pykka.ActorDeadError):
        ref.ask(1, timeout=5)
