"""The compiled core keeps its worker threads between parallel loops (cpp/parallel.hpp):
a forked child and many searches in a row must still work (concurrent searches:
tests/test_neighbors.py)."""

import hashlib
import multiprocessing
import os
import sys

import numpy as np
import pytest

import idest


def _data(seed):
    return np.random.default_rng(seed).normal(size=(3000, 20)).astype(np.float32)


def _search_in_child(queue):
    nn = idest.knn(_data(0), 7, n_jobs=2)
    queue.put(hashlib.sha256(nn.indices.tobytes()).hexdigest())  # small: fits the pipe


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_forked_child_searches_on_threads_of_its_own():
    """The parent's kept threads do not exist in a fork()ed child: it must make new ones
    instead of waiting for them (a hang, caught by the timeout)."""
    want = idest.knn(_data(0), 7, n_jobs=2).indices  # the parent now keeps threads
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_search_in_child, args=(queue,))
    child.start()
    child.join(timeout=30)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child's search hung")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == hashlib.sha256(want.tobytes()).hexdigest()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/task")
def test_searches_in_a_row_start_no_more_threads():
    X = _data(1)
    idest.knn(X, 7, n_jobs=2)
    before = len(os.listdir("/proc/self/task"))
    for _ in range(20):
        idest.knn(X, 7, n_jobs=2)
    assert len(os.listdir("/proc/self/task")) == before
