"""The one ordered, bounded map (cityscapes_io.parallel.ordered_map): results in input order,
at most a window of tasks in flight, warnings of worker processes raised again in order, a
killed worker turned into WorkerDied naming the items not accounted for, threads."""
import os
import signal
import threading
import time
import warnings

import pytest

from cityscapes_io.parallel import WorkerDied, ordered_map


def _slow_square(x):
    time.sleep(0.02 * (x % 3))  # later items often finish first
    return x * x


def _warn(x):
    warnings.warn(f"item {x}")
    return x


def _die_on(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5 if x > 3 else 0)
    return x


def _fail_on(x):
    if x == 2:
        raise ValueError(f"bad {x}")
    return x


def _pid(x):
    return os.getpid()


_STARTED = []


def _init(tag):
    _STARTED.append(tag)


def _started(x):
    return list(_STARTED)


@pytest.mark.parametrize("processes", [True, False])
def test_results_come_in_input_order(processes):
    out = list(ordered_map(_slow_square, range(20), workers=2, processes=processes, chunk=3 if processes else 1))
    assert out == [x * x for x in range(20)]


def test_one_worker_runs_in_the_calling_thread():
    seen = []
    out = list(ordered_map(lambda x: seen.append(threading.current_thread()) or x, range(4), workers=1))
    assert out == [0, 1, 2, 3] and set(seen) == {threading.current_thread()}


@pytest.mark.parametrize("window", [None, 3])
def test_items_are_taken_lazily_within_the_window(window):
    taken = []

    def items():
        for x in range(50):
            taken.append(x)
            yield x

    workers = 2
    bound = window or workers + 1
    for k, result in enumerate(ordered_map(lambda x: x, items(), workers=workers, processes=False, window=window)):
        assert result == k
        assert len(taken) <= k + bound  # never more than the window ahead of what is consumed
    assert taken == list(range(50))


def test_skipped_items_are_not_sent_and_come_back_as_none_in_their_place():
    sent = []

    def fn(x):
        sent.append(x)
        return -x

    out = list(ordered_map(fn, range(6), workers=2, processes=False, skip=lambda x: x % 2 == 0))
    assert out == [None, -1, None, -3, None, -5] and sorted(sent) == [1, 3, 5]


def test_warnings_of_worker_processes_come_back_in_order():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(ordered_map(_warn, range(8), workers=2, chunk=2))
    assert out == list(range(8))
    assert [str(w.message) for w in caught] == [f"item {x}" for x in range(8)]


def test_an_exception_of_fn_comes_back_as_itself_at_its_turn():
    got = []
    with pytest.raises(ValueError, match="bad 2"):
        for x in ordered_map(_fail_on, range(10), workers=2):
            got.append(x)
    assert got == [0, 1]


def test_a_killed_worker_is_worker_died_naming_the_items_not_accounted_for():
    got = []
    with pytest.raises(WorkerDied) as info:
        for x in ordered_map(_die_on, range(6), workers=2):
            got.append(x)
    lost = info.value.lost
    assert 3 in lost and not set(lost) & set(got)  # the item being worked on, none yielded
    assert lost == sorted(lost) and got == list(range(len(got))) and len(got) <= 3
    assert info.value.__cause__ is not None


def test_processes_run_the_initializer_and_threads_share_this_process():
    assert all(s == ["up"] for s in ordered_map(_started, range(4), workers=2, initializer=_init, initargs=("up",)))
    assert set(ordered_map(_pid, range(4), workers=2, processes=False)) == {os.getpid()}
    assert os.getpid() not in set(ordered_map(_pid, range(4), workers=2))


def test_closing_early_stops_the_pool():
    before = threading.active_count()
    results = ordered_map(_slow_square, range(100), workers=2, processes=False)
    assert next(results) == 0
    results.close()
    assert threading.active_count() <= before
