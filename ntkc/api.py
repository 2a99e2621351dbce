"""Public entry points. Thin: check arguments, look up the plan, run it."""

from __future__ import annotations

import enum
from typing import Any, Callable, Sequence

from ntkc.planning import PlanOptions, check_options, emit_warnings, execute, plan_for, valid_methods

__all__ = ["ntk_fn", "valid_methods", "NtkImplementation"]

PyTree = Any


class NtkImplementation(enum.IntEnum):
    """neural-tangents' names for the methods, accepted by ``implementation=`` of
    :func:`ntkc.ntk_fn` and :func:`ntkc.compile` as an alias of ``method=``.

    The values are neural-tangents' own (``nt.NtkImplementation``), so code written for it —
    an enum member or a plain int — keeps working after switching the import:

    ==========================  =====  ==================
    member                      value  ``method=``
    ==========================  =====  ==================
    ``AUTO``                    0      ``"auto"``
    ``JACOBIAN_CONTRACTION``    1      ``"jacobian"``
    ``NTK_VECTOR_PRODUCTS``     2      ``"ntvp"``
    ``STRUCTURED_DERIVATIVES``  3      ``"structured"``
    ==========================  =====  ==================

    ``AUTO`` is ntkc's ``"auto"``: the fewest FLOPs predicted by the symbolic cost model (and,
    under :func:`ntkc.compile`, timed on a near tie) rather than neural-tangents' FLOP count of
    XLA's compiled programs.

    Example:
      >>> import ntkc
      >>> ntkc.NtkImplementation.STRUCTURED_DERIVATIVES.method
      'structured'
      >>> ntkc.NtkImplementation(1).method
      'jacobian'
    """

    AUTO = 0
    JACOBIAN_CONTRACTION = 1
    NTK_VECTOR_PRODUCTS = 2
    STRUCTURED_DERIVATIVES = 3

    @property
    def method(self) -> str:
        """The ``method=`` string this member stands for."""
        return {0: "auto", 1: "jacobian", 2: "ntvp", 3: "structured"}[int(self)]


def resolve_method(method: str | None, implementation: Any = None) -> str:
    """The ``method`` string from ``method=`` and its neural-tangents alias ``implementation=``.

    ``implementation`` is an :class:`NtkImplementation`, its int value (0–3) or a method string.
    Neither given: ``"auto"``. Both given: they must name the same method.

    >>> resolve_method(None, 3), resolve_method("ntvp"), resolve_method(None)
    ('structured', 'ntvp', 'auto')
    >>> resolve_method("jacobian", NtkImplementation.JACOBIAN_CONTRACTION)
    'jacobian'
    """
    if implementation is None:
        return "auto" if method is None else method
    if isinstance(implementation, str) and implementation in valid_methods():
        alias = implementation
    elif isinstance(implementation, int) and not isinstance(implementation, bool) and implementation in range(4):
        alias = NtkImplementation(int(implementation)).method
    else:
        raise ValueError(
            f"Unknown `implementation` {implementation!r}: give an ntkc.NtkImplementation (AUTO=0, "
            f"JACOBIAN_CONTRACTION=1, NTK_VECTOR_PRODUCTS=2, STRUCTURED_DERIVATIVES=3), its int value, "
            f"or use `method=` with one of {list(valid_methods())}.")
    if method is not None and method != alias:
        raise ValueError(
            f"`method={method!r}` and `implementation={implementation!r}` (neural-tangents' name for "
            f"method={alias!r}) disagree; give one of them.")
    return alias


def ntk_fn(
    f: Callable,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    vmap_axes: Any = None,
    method: str | None = None,
    memory_limit: int | None = None,
    implementation: Any = None,
) -> Callable:
    """Return ``kernel(x1, x2, params, **kwargs)`` computing the empirical NTK of ``f``.

    ``Θ(x1, x2) = [∂f(params, x1)/∂params] [∂f(params, x2)/∂params]ᵀ``, with the same output
    layout as neural-tangents' ``empirical_ntk_fn``, so code can switch by changing an import.

    Args:
      f: ``f(params, x, **kwargs)`` returning an array or a pytree of arrays whose leading axis
        (by default) indexes examples.
      trace_axes: output axes to trace over: x1's and x2's copies are identified, summed and
        **divided by their size** (an average), and the axis disappears. Default ``(-1,)``:
        average over the logits.
      diagonal_axes: output axes on which only the diagonal is kept; they appear once.
      vmap_axes: ``None`` (evaluate ``f`` on whole batches), an int batch axis for inputs and
        outputs, a pytree of ints matching ``x``, or ``(in_axes, out_axes, kwargs_axes)``.
        Giving it certifies that ``f`` is a ``vmap`` over examples; each example is evaluated
        on its own (batch of one), which is also what makes batch-coupled models per-example.
      method: one of ``"jacobian"`` (contract per-example Jacobians), ``"ntvp"`` (NTK-vector
        products), ``"structured"`` (structured derivatives, compiled from the model's jaxpr),
        ``"auto"`` (the cheapest by estimated FLOPs; the default) — see ``ntkc.METHODS``.
      memory_limit: optional bound in bytes on large intermediates: ``structured`` prefers
        contraction orders whose intermediates fit, ``ntvp`` processes output columns in chunks
        that fit; ``jacobian`` ignores it (its Jacobians are what they are).
      implementation: neural-tangents' spelling of ``method``: an :class:`ntkc.NtkImplementation`
        or its int value (``1`` Jacobian contraction, ``2`` NTK-vector products, ``3``
        structured derivatives, ``0`` auto). Giving both ``method`` and a different
        ``implementation`` is an error.

    Complex parameters count as pairs of real parameters (real and imaginary parts), and the
    kernel is ``J(x1)·J(x2)ᴴ`` (complex when ``f``'s outputs are); for a holomorphic ``f`` this
    is twice ``J_c·J_cᴴ`` with ``J_c = ∂f/∂θ`` — see :mod:`ntkc.complex_models`.

    The first call with given shapes builds a plan (:func:`ntkc.plan`: ``f`` is traced and
    compiled once; later calls, and ``jax.jit`` retracing, reuse it) and one XLA program.

    Returns:
      ``kernel(x1, x2, params, **kwargs)``; ``x2=None`` means ``x2 = x1``. A keyword argument
      given as a 2-tuple is split: the first element goes to x1, the second to x2. Keyword
      arguments made of arrays are inputs; any other (a flag, a number) is passed to ``f`` as a
      constant. The result is one array per output leaf (same pytree as ``f``'s output). Its
      axes are, output axis by output axis: a traced axis contributes nothing, a diagonal axis
      one axis, any other axis the pair (x1's, x2's). For outputs of shape ``(N, O)``:

      ============================  ========================  =================
      trace_axes                    diagonal_axes             kernel shape
      ============================  ========================  =================
      ``(-1,)`` (default)           ``()``                    ``(N1, N2)``
      ``()``                        ``()``                    ``(N1, N2, O, O)``
      ``()``                        ``(0,)``                  ``(N, O, O)``
      ``(-1,)``                     ``(0,)``                  ``(N,)``
      ============================  ========================  =================

    Example:
      >>> import jax.numpy as jnp, ntkc
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": jnp.ones((3, 4)) / 2, "v": jnp.ones((4, 2)) / 2}
      >>> x1, x2 = jnp.ones((5, 3)), jnp.ones((7, 3))
      >>> ntkc.ntk_fn(f)(x1, x2, params).shape
      (5, 7)
      >>> ntkc.ntk_fn(f, trace_axes=())(x1, None, params).shape
      (5, 5, 2, 2)
      >>> ntkc.ntk_fn(f, implementation=ntkc.NtkImplementation.STRUCTURED_DERIVATIVES)(x1, x2, params).shape
      (5, 7)
    """
    method = resolve_method(method, implementation)
    options = PlanOptions(trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap_axes=vmap_axes,
                          memory_limit=memory_limit)
    check_options(f, method, options)

    def kernel(x1: PyTree, x2: PyTree | None, params: PyTree, **kwargs: Any) -> PyTree:
        p = plan_for(f, params, x1, x2, kwargs, method, options)
        emit_warnings(p, stacklevel=2)
        return execute(p, x1, x2, params, kwargs)

    return kernel
