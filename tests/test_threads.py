"""idest.utils.limit_threads: the limit holds inside the block only, whatever happens there."""

import pytest
from threadpoolctl import threadpool_info

from idest.utils import limit_threads

torch = pytest.importorskip("torch", reason="the torch half of the limit needs torch")


def _blas_threads():
    return [p["num_threads"] for p in threadpool_info()]


def test_limit_holds_inside_and_is_restored_even_after_an_exception():
    before_torch, before_blas = torch.get_num_threads(), _blas_threads()
    with pytest.raises(RuntimeError, match="inside"), limit_threads(1):
        assert torch.get_num_threads() == 1
        assert all(n == 1 for n in _blas_threads())
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before_torch and _blas_threads() == before_blas


def test_none_leaves_every_pool_alone_and_bad_counts_are_refused():
    before = torch.get_num_threads(), _blas_threads()
    with limit_threads(None):
        assert (torch.get_num_threads(), _blas_threads()) == before
    for bad in (0, 1.5, "2"):
        with pytest.raises(ValueError, match="limit_threads: n_jobs must be"):
            with limit_threads(bad):
                pass
