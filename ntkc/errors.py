"""Every exception and warning ntkc raises or emits to its users, in one place.

Errors name the argument or the model line at fault; warnings say what ntkc did instead, and the
result is exact either way.

>>> issubclass(ReverseModeUnavailable, StructureUnavailable)
True
"""

from __future__ import annotations


class StructureUnavailable(NotImplementedError):
    """The structured method does not apply to this ``f``; the message (the subclass's ``why``,
    naming the equation and the user's line) says why and which exact method computes the
    kernel instead (Jacobian contraction)."""

    why = "ntkc: '{name}' (from {source}) has no structured form."

    def __init__(self, eqn):
        self.primitive, self.source = eqn.name, eqn.source
        super().__init__(self.why.format(name=eqn.name, source=eqn.source))


class ComplexIntermediates(StructureUnavailable):
    """``f``'s linear program computes with complex numbers (complex parameters or outputs,
    already split into real parts, still have complex intermediates). Structured terms are real
    einsums, so the kernel is computed by Jacobian contraction of the real-parameter problem."""

    why = ("ntkc: f's linearization computes with complex values ('{name}' from {source}); the "
           "structured method is real-valued, so the NTK is computed by Jacobian contraction "
           "(method='jacobian') instead.")


class ReverseModeUnavailable(StructureUnavailable):
    """``f``'s linear program contains an equation JAX cannot run in reverse (a ``while`` loop
    with a data-dependent trip count): no cotangent sweep, VJP or NTK-vector product exists,
    only forward-mode Jacobians. The methods fall back to forward-mode Jacobian contraction."""

    why = ("ntkc: f's linearization contains '{name}' (from {source}), a loop with a "
           "data-dependent trip count, which JAX cannot differentiate in reverse mode; the NTK "
           "is computed by forward-mode Jacobian contraction (method='jacobian') instead.")


class ForwardModeUnavailable(NotImplementedError):
    """``f``'s linear program contains the backward rule of a ``jax.custom_vjp`` function, which
    JAX runs only in reverse mode: NTK-vector products (forward mode) do not exist for it, so that
    method falls back to Jacobian contraction; the structured method transposes the rule."""

    why = ("ntkc: f's linearization contains '{name}' (from {source}), the backward rule of a "
           "jax.custom_vjp function, which runs only in reverse mode; NTK-vector products need "
           "forward mode, so the NTK is computed by Jacobian contraction (method='jacobian') instead.")

    def __init__(self, eqn):
        self.primitive, self.source = eqn.name, eqn.source
        super().__init__(self.why.format(name=eqn.name, source=eqn.source))


class MultiOutputConsumer(StructureUnavailable):
    """A parameter is read directly by a primitive with several outputs, which has no einsum
    form of its Jacobian; the kernel is computed by Jacobian contraction instead."""

    why = ("ntkc: a parameter is consumed by the multi-output primitive '{name}' (from {source}), "
           "which has no structured form; the NTK is computed by Jacobian contraction "
           "(method='jacobian') instead.")


class MethodFallbackWarning(UserWarning):
    """The requested method does not apply to ``f`` (it needs reverse mode, which a
    data-dependent ``while`` rules out, or real-valued structure); Jacobian contraction computes
    the (exact) kernel instead. The message names the cause and the user's line."""


class DenseFallbackWarning(UserWarning):
    """A consumer primitive has no structure rule; its Jacobian block is formed densely (exact)."""


class ExportError(ValueError):
    """The program contains something the source backend cannot write as Python."""


class IRError(AssertionError):
    """The IR violates an invariant (raised by :func:`ntkc.ir.verify.verify`); ``invariant``
    names it (a key of :data:`ntkc.ir.verify.INVARIANTS`)."""

    def __init__(self, message: str, invariant: str | None = None):
        super().__init__(message)
        self.invariant = invariant


class ConvergenceWarning(UserWarning):
    """An iterative solver (conjugate gradients, Lanczos) stopped at its iteration budget before
    reaching its tolerance; the message gives the residual reached."""
