"""Every exception and warning ntkc raises or emits to its users, in one place.

Errors name the argument or the model line at fault; warnings say what ntkc did instead, and the
result is exact either way.

>>> issubclass(ReverseModeUnavailable, StructureUnavailable)
True
"""

from __future__ import annotations


class EquationError(NotImplementedError):
    """A method that cannot run because of one equation of ``f``'s program: the message is the
    class's ``why`` with the equation's primitive (``primitive``) and the user's line
    (``source``)."""

    why = "ntkc: '{name}' (from {source})."

    def __init__(self, eqn):
        self.primitive, self.source = eqn.name, eqn.source
        super().__init__(self.why.format(name=eqn.name, source=eqn.source))


class StructureUnavailable(EquationError):
    """The structured method does not apply to this ``f``; the message (the subclass's ``why``,
    naming the equation and the user's line) says why and which exact method computes the
    kernel instead (Jacobian contraction).

    It is the reason a plan records, not an error you see: the plan runs Jacobian contraction and
    warns (:class:`MethodFallbackWarning`) with this message.

    Example:
      >>> import jax, jax.numpy as jnp, ntkc
      >>> def f(p, x):  # a loop whose trip count depends on the data
      ...     return jax.lax.while_loop(lambda c: c[1] < x.sum(), lambda c: (c[0] * p, c[1] + 1.0), (x, 0.0))[0]
      >>> plan = ntkc.plan(f, jnp.float32(0.5), jnp.ones((2, 3)), method="structured")
      >>> reason = ntkc.METHODS["structured"].fallback(plan.analysis)   # why structured does not apply
      >>> isinstance(reason, ntkc.StructureUnavailable), plan.method     # what runs instead
      (True, 'jacobian')
    """

    why = "ntkc: '{name}' (from {source}) has no structured form."


class ComplexIntermediates(StructureUnavailable):
    """``f``'s linear program computes with complex numbers (complex parameters or outputs,
    already split into real parts, still have complex intermediates). Structured terms are real
    einsums, so the kernel is computed by Jacobian contraction of the real-parameter problem.

    Example:
      >>> import jax.numpy as jnp, ntkc
      >>> f = lambda p, x: jnp.real(jnp.exp(1j * x * p))          # real in, real out, complex inside
      >>> plan = ntkc.plan(f, jnp.float32(0.5), jnp.ones((2, 3)), method="structured")
      >>> type(ntkc.METHODS["structured"].fallback(plan.analysis)).__name__, plan.method
      ('ComplexIntermediates', 'jacobian')
    """

    why = ("ntkc: f's linearization computes with complex values ('{name}' from {source}); the "
           "structured method is real-valued, so the NTK is computed by Jacobian contraction "
           "(method='jacobian') instead.")


class ReverseModeUnavailable(StructureUnavailable):
    """``f``'s linear program contains an equation JAX cannot run in reverse (a ``while`` loop
    with a data-dependent trip count): no cotangent sweep, VJP or NTK-vector product exists,
    only forward-mode Jacobians. The methods fall back to forward-mode Jacobian contraction.

    Example:
      >>> import jax, jax.numpy as jnp, ntkc
      >>> def f(p, x):  # a loop whose trip count depends on the data
      ...     return jax.lax.while_loop(lambda c: c[1] < x.sum(), lambda c: (c[0] * p, c[1] + 1.0), (x, 0.0))[0]
      >>> plan = ntkc.plan(f, jnp.float32(0.5), jnp.ones((2, 3)), method="structured")
      >>> type(ntkc.METHODS["structured"].fallback(plan.analysis)).__name__
      'ReverseModeUnavailable'
      >>> plan.method, ntkc.plan(f, jnp.float32(0.5), jnp.ones((2, 3)), method="ntvp").method
      ('jacobian', 'jacobian')
    """

    why = ("ntkc: f's linearization contains '{name}' (from {source}), a loop with a "
           "data-dependent trip count, which JAX cannot differentiate in reverse mode; the NTK "
           "is computed by forward-mode Jacobian contraction (method='jacobian') instead.")


class ForwardModeUnavailable(EquationError):
    """``f``'s linear program contains the backward rule of a ``jax.custom_vjp`` function, which
    JAX runs only in reverse mode: NTK-vector products (forward mode) do not exist for it, so that
    method falls back to Jacobian contraction; the structured method transposes the rule.

    Example:
      >>> import jax, jax.numpy as jnp, ntkc
      >>> @jax.custom_vjp
      ... def straight_through(x):                                  # round, with an identity gradient
      ...     return jnp.round(x)
      >>> straight_through.defvjp(lambda x: (jnp.round(x), None), lambda _, g: (g,))
      >>> f = lambda p, x: straight_through(x * p)
      >>> plan = ntkc.plan(f, jnp.float32(0.5), jnp.ones((2, 3)), method="ntvp")
      >>> type(ntkc.METHODS["ntvp"].fallback(plan.analysis)).__name__, plan.method
      ('ForwardModeUnavailable', 'jacobian')
    """

    why = ("ntkc: f's linearization contains '{name}' (from {source}), the backward rule of a "
           "jax.custom_vjp function, which runs only in reverse mode; NTK-vector products need "
           "forward mode, so the NTK is computed by Jacobian contraction (method='jacobian') instead.")


class MultiOutputConsumer(StructureUnavailable):
    """A parameter is read directly by a primitive with several outputs, which has no einsum
    form of its Jacobian; the kernel is computed by Jacobian contraction instead.

    Example:
      >>> import ntkc
      >>> issubclass(ntkc.MultiOutputConsumer, ntkc.StructureUnavailable)  # met as a plan's reason
      True
    """

    why = ("ntkc: a parameter is consumed by the multi-output primitive '{name}' (from {source}), "
           "which has no structured form; the NTK is computed by Jacobian contraction "
           "(method='jacobian') instead.")


class MethodFallbackWarning(UserWarning):
    """The requested method does not apply to ``f`` (it needs reverse mode, which a
    data-dependent ``while`` rules out, or real-valued structure); Jacobian contraction computes
    the (exact) kernel instead. The message names the cause and the user's line.

    Example:
      >>> import jax, jax.numpy as jnp, ntkc
      >>> def f(p, x):  # a loop whose trip count depends on the data
      ...     return jax.lax.while_loop(lambda c: c[1] < x.sum(), lambda c: (c[0] * p, c[1] + 1.0), (x, 0.0))[0]
      >>> plan = ntkc.plan(f, jnp.float32(0.5), jnp.ones((2, 3)), method="structured")
      >>> message, category = plan.warnings[0]                      # emitted each time it runs
      >>> category is ntkc.MethodFallbackWarning, message.startswith("method='structured': ntkc: f's")
      (True, True)
    """


class DenseFallbackWarning(UserWarning):
    """A consumer primitive has no structure rule; its Jacobian block is formed densely (exact).
    The message names the primitive and the line of the model it came from.

    Example:
      >>> import warnings, jax, jax.numpy as jnp, ntkc
      >>> lower = jnp.tril(jnp.ones((3, 3))) + 2 * jnp.eye(3)
      >>> f = lambda p, x: x @ jax.lax.linalg.triangular_solve(lower, p["w"], left_side=True, lower=True)
      >>> params = {"w": jnp.ones((3, 2))}                    # triangular_solve: no structure rule
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     k = ntkc.ntk_fn(f, vmap_axes=0, method="structured")(jnp.ones((2, 3)), None, params)
      >>> any(w.category is ntkc.DenseFallbackWarning for w in caught), k.shape
      (True, (2, 2))
    """


class ExportError(ValueError):
    """The program contains something the source backend cannot write as Python
    (:meth:`ntkc.CompiledNTK.source`, ``ntkc export``); the message names it.

    Example:
      >>> import ntkc
      >>> issubclass(ntkc.ExportError, ValueError)
      True
    """


class IRError(AssertionError):
    """The IR violates an invariant (raised by :func:`ntkc.ir.verify.verify`); ``invariant``
    names it (a key of :data:`ntkc.ir.verify.INVARIANTS`)."""

    def __init__(self, message: str, invariant: str | None = None):
        super().__init__(message)
        self.invariant = invariant


class ConvergenceWarning(UserWarning):
    """An iterative solver (conjugate gradients, Lanczos) stopped at its iteration budget before
    reaching its tolerance; the message gives the residual reached. The result is returned
    anyway; raise ``maxiter``, the regularization, or (in float32) ``rtol``.

    Example:
      >>> import warnings, jax.numpy as jnp, numpy as np, ntkc
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": np.linspace(-1, 1, 48, dtype=np.float32).reshape(3, 16),
      ...           "v": np.linspace(-1, 1, 32, dtype=np.float32).reshape(16, 2)}
      >>> op = ntkc.ntk_operator(f, params, np.linspace(-1, 1, 60, dtype=np.float32).reshape(20, 3),
      ...                        mode="matrix_free")
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     _ = op.solve(np.ones(20, np.float32), maxiter=2)        # too few iterations
      >>> any(w.category is ntkc.ConvergenceWarning for w in caught)
      True
    """
