"""Output-axis semantics: canonicalisation, labels and result shapes (doctests included)."""

import doctest

import pytest

import ntkc.axes
import ntkc.batching
from ntkc.axes import KernelAxes


def test_doctests():
    for module in (ntkc.axes, ntkc.batching):
        failures, tried = doctest.testmod(module).failed, doctest.testmod(module).attempted
        assert tried > 0 and failures == 0, module.__name__


@pytest.mark.parametrize(
    "shape1, shape2, trace, diag, expected",
    [
        ((3, 5), (4, 5), (-1,), (), (3, 4)),
        ((3, 5), (4, 5), (), (), (3, 4, 5, 5)),
        ((3, 5), (3, 5), (), (0,), (3, 5, 5)),
        ((3, 6, 5), (3, 6, 5), (), (2, 0), (3, 6, 6, 5)),
        ((3, 6, 5), (4, 6, 5), (1, 2), (), (3, 4)),
        ((3, 6, 5), (3, 6, 5), (0,), (1,), (6, 5, 5)),
        ((2, 6, 7, 8), (5, 6, 7, 8), (-1,), (1,), (2, 5, 6, 7, 7)),
    ],
)
def test_result_shape(shape1, shape2, trace, diag, expected):
    got = KernelAxes.create(len(shape1), trace, diag).result_shape(shape1, shape2)
    assert got == expected


def test_trace_size_is_product_of_traced_axes():
    assert KernelAxes.create(3, (0, 2), ()).trace_size((2, 3, 5)) == 10
