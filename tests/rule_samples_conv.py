"""Rule samples for the conv rules (see rule_samples.py)."""

from __future__ import annotations

from jax import lax

from rule_samples import RuleSample, rand

NHWC = ("NHWC", "HWIO", "NHWC")
NCHW = ("NCHW", "OIHW", "NCHW")


def _kernel(padding, dn=NHWC, strides=None, **kw):
    """θ is the kernel: ``conv(other, θ)``."""
    def fn(t, o):
        s = strides or (1,) * (o.ndim - 2)
        return lax.conv_general_dilated(o, t, s, padding, dimension_numbers=dn, **kw)
    return fn


def _input(padding, dn=NHWC, strides=None, **kw):
    """θ is the input: ``conv(θ, other)``."""
    def fn(t, o):
        s = strides or (1,) * (t.ndim - 2)
        return lax.conv_general_dilated(t, o, s, padding, dimension_numbers=dn, **kw)
    return fn


def _pool(window, strides, padding, base_dilation=None, window_dilation=None):
    return lambda t, o: lax.reduce_window(t, 0.0, lax.add, window, strides, padding,
                                          base_dilation, window_dilation)


def _conv_samples():
    return (
        RuleSample("nhwc-hwio-same", _kernel("SAME"), rand(0, 3, 3, 3, 4), rand(1, 2, 5, 5, 3)),
        RuleSample("nchw-oihw-asym-strided", _kernel(((1, 0), (0, 2)), NCHW, strides=(2, 1)),
                   rand(0, 4, 3, 3, 2), rand(1, 2, 3, 5, 4)),
        RuleSample("nhwc-oihw-nchw-mixed", _kernel("SAME", ("NHWC", "OIHW", "NCHW")),
                   rand(0, 4, 3, 3, 2), rand(1, 2, 4, 5, 3)),
        RuleSample("1d-nwc-rhs-dilated", _kernel(((2, 1),), ("NWC", "WIO", "NWC"), rhs_dilation=(2,)),
                   rand(0, 3, 2, 3), rand(1, 2, 7, 2)),
        RuleSample("3d-ndhwc-valid-strided", _kernel("VALID", ("NDHWC", "DHWIO", "NDHWC"), strides=(1, 2, 1)),
                   rand(0, 2, 2, 2, 2, 3), rand(1, 1, 4, 5, 3, 2)),
        RuleSample("negative-padding", _kernel(((-1, 1), (1, -1))), rand(0, 2, 3, 2, 3), rand(1, 2, 5, 6, 2)),
        RuleSample("valid-strided-rhs-dilated", _kernel("VALID", strides=(2, 2), rhs_dilation=(2, 1)),
                   rand(0, 3, 3, 2, 3), rand(1, 2, 8, 7, 2)),
        RuleSample("lhs-dilated", _kernel(((1, 1), (2, 0)), lhs_dilation=(2, 2)),
                   rand(0, 3, 3, 2, 3), rand(1, 2, 3, 4, 2)),
        RuleSample("lhs-dilated-negative-padding", _kernel(((-1, 2), (0, -2)), NCHW, lhs_dilation=(3, 2)),
                   rand(0, 2, 2, 2, 3), rand(1, 2, 2, 3, 4)),
        RuleSample("feature-groups-2", _kernel("SAME", feature_group_count=2),
                   rand(0, 3, 3, 2, 6), rand(1, 2, 4, 4, 4)),
        RuleSample("feature-groups-2-nchw-dilated", _kernel(((1, 2), (0, 1)), NCHW, strides=(2, 1),
                                                            rhs_dilation=(1, 2), feature_group_count=2),
                   rand(0, 4, 3, 2, 2), rand(1, 2, 6, 5, 5)),
        RuleSample("depthwise", _kernel("SAME", feature_group_count=3),
                   rand(0, 3, 3, 1, 6), rand(1, 2, 4, 4, 3)),
        RuleSample("batch-groups-2", _kernel("VALID", batch_group_count=2),
                   rand(0, 2, 2, 3, 4), rand(1, 4, 4, 4, 3)),
        RuleSample("batch-groups-2-nchw-strided", _kernel(((1, 0), (1, 1)), NCHW, strides=(2, 1),
                                                          batch_group_count=2),
                   rand(0, 6, 2, 3, 2), rand(1, 6, 2, 5, 4)),
        RuleSample("theta-lhs-nhwc-same", _input("SAME"), rand(0, 2, 4, 4, 3), rand(1, 3, 3, 3, 2)),
        RuleSample("theta-lhs-nchw-grouped-strided",
                   _input(((1, 0), (0, 1)), NCHW, strides=(2, 1), feature_group_count=2),
                   rand(0, 2, 4, 5, 4), rand(1, 4, 2, 3, 2)),
        RuleSample("theta-lhs-1d-dilated", _input(((1, 2),), ("NWC", "WIO", "NWC"), lhs_dilation=(2,),
                                                  rhs_dilation=(2,)),
                   rand(0, 3, 4, 2), rand(1, 2, 2, 3)),
    )


def _pool_samples():
    return (
        RuleSample("2x2-stride-2", _pool((1, 2, 2, 1), (1, 2, 2, 1), "VALID"), rand(0, 2, 6, 5, 3)),
        RuleSample("3x3-overlapping-same", _pool((1, 3, 3, 1), (1, 1, 1, 1), "SAME"), rand(0, 2, 5, 4, 2)),
        RuleSample("explicit-asymmetric-padding",
                   _pool((1, 3, 2, 1), (1, 2, 3, 1), ((0, 0), (1, 2), (2, 0), (0, 0))), rand(0, 2, 6, 7, 2)),
        RuleSample("batch-and-channel-windows", _pool((2, 2, 1), (1, 2, 1), "VALID"), rand(0, 3, 5, 2)),
        RuleSample("base-window-dilation",
                   _pool((1, 3, 3), (1, 2, 1), ((0, 0), (0, 0), (0, 2)), (1, 2, 1), (1, 1, 2)),
                   rand(0, 2, 4, 5)),
        RuleSample("1d", _pool((3,), (2,), ((1, 1),)), rand(0, 7)),
    )


def register(add) -> None:
    """Add samples with ``add(primitive_name, RuleSample(...), ...)``."""
    add("conv_general_dilated", *_conv_samples())
    add("reduce_window_sum", *_pool_samples())
