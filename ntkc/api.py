"""Public entry points. Thin: check arguments, look up the plan, run it."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ntkc.planning import PlanOptions, check_options, emit_warnings, execute, plan_for, valid_methods

__all__ = ["ntk_fn", "valid_methods"]

PyTree = Any


def ntk_fn(
    f: Callable,
    trace_axes: Sequence[int] = (-1,),
    diagonal_axes: Sequence[int] = (),
    vmap_axes: Any = None,
    method: str = "auto",
    memory_limit: int | None = None,
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
        ``"auto"`` (the cheapest by estimated FLOPs) — see ``ntkc.METHODS``.
      memory_limit: optional bound in bytes on large intermediates: ``structured`` prefers
        contraction orders whose intermediates fit, ``ntvp`` processes output columns in chunks
        that fit; ``jacobian`` ignores it (its Jacobians are what they are).

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
    """
    options = PlanOptions(trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap_axes=vmap_axes,
                          memory_limit=memory_limit)
    check_options(f, method, options)

    def kernel(x1: PyTree, x2: PyTree | None, params: PyTree, **kwargs: Any) -> PyTree:
        p = plan_for(f, params, x1, x2, kwargs, method, options)
        emit_warnings(p, stacklevel=2)
        return execute(p, x1, x2, params, kwargs)

    return kernel
