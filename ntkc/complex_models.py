"""Complex parameters and complex outputs, reduced exactly to real NTK problems.

Convention. A complex parameter θ = a + i·b is the pair of real parameters (a, b) — the view
``jax.grad`` and every optimizer take of it — and the NTK is

    Θ(x1, x2) = J(x1) · J(x2)ᴴ,    J = ∂f/∂(a, b)  (complex when f's outputs are),

for holomorphic and non-holomorphic ``f`` alike. For a holomorphic ``f`` with complex
derivative J_c = ∂f/∂θ, ∂f/∂a = J_c and ∂f/∂b = i·J_c, so Θ = 2·J_c·J_cᴴ: divide by 2 for the
holomorphic convention J_c·J_cᴴ. Real parameters are unchanged (∂f/∂θ as usual).

Reduction. With complex outputs f = u + i·v (u, v real), J = A + i·B with A = ∂u, B = ∂v, and

    Θ = A1·A2ᵀ + B1·B2ᵀ + i·(B1·A2ᵀ − A1·B2ᵀ),

four real kernels K(p, q) = ∂p(x1)·∂q(x2)ᵀ of the real functions u, v, each computed by the
requested method on a problem whose two sides run different functions. Real outputs need one.
The output layout (trace, diagonal and vmap axes) is the same as for real models.

>>> import jax.numpy as jnp
>>> real, combine = split_params({"w": jnp.array([1 + 2j]), "b": jnp.array([0.5])})
>>> [a.tolist() for a in real["w"]], real["b"].tolist()
([[1.0], [2.0]], [0.5])
>>> combine(real)["w"].tolist()
[(1+2j)]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

PyTree = Any


def _is_complex(leaf) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jnp.complexfloating)


def has_complex_params(params: PyTree) -> bool:
    return any(_is_complex(leaf) for leaf in jax.tree_util.tree_leaves(params))


def _parts(leaf):
    """(real, imag) of a complex array, or the matching real ``ShapeDtypeStruct`` pair."""
    if isinstance(leaf, jax.ShapeDtypeStruct):
        part = jax.ShapeDtypeStruct(leaf.shape, jnp.finfo(leaf.dtype).dtype)
        return part, part
    return jnp.real(leaf), jnp.imag(leaf)


def split_params(params: PyTree) -> tuple[PyTree, Callable[[PyTree], PyTree]]:
    """``(real, combine)``: every complex leaf replaced by its ``(real, imag)`` pair, and the
    function putting such a tree back together (``combine(real) == params``)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    is_c = [_is_complex(leaf) for leaf in leaves]
    real = [_parts(leaf) if c else leaf for leaf, c in zip(leaves, is_c)]

    def combine(tree: PyTree) -> PyTree:
        parts = treedef.flatten_up_to(tree)
        return treedef.unflatten([jax.lax.complex(*p) if c else p for p, c in zip(parts, is_c)])

    return treedef.unflatten(real), combine


def complex_out(problem) -> bool:
    """Whether any of the problem's output leaves is complex."""
    return any(_is_complex(leaf) for leaf in jax.tree_util.tree_leaves(problem.out1))


def real_problem(build: Callable, f: Callable, x1: PyTree, x2: PyTree | None, params: PyTree,
                 kwargs: dict):
    """``(problem, real params, parts)``: the problem of ``f`` on the real parameters — of
    ``u = Re f`` when ``f``'s outputs are complex, in which case ``parts = (u, v)`` (else None).
    ``build(f, x1, x2, params, kwargs)`` makes a problem (checking the arguments)."""
    real, combine = split_params(params)
    problem = build(lambda p, x, **kw: f(combine(p), x, **kw), x1, x2, real, kwargs)
    if not complex_out(problem):
        return problem, real, None
    u, v = real_parts(f, combine)
    return build(u, x1, x1 if x2 is None else x2, real, kwargs), real, (u, v)


def real_parts(f: Callable, combine: Callable) -> tuple[Callable, Callable]:
    """The real functions ``u = Re f`` and ``v = Im f`` of the real parameters."""
    def part(take):
        return lambda p, x, **kw: jax.tree_util.tree_map(take, f(combine(p), x, **kw))
    return part(jnp.real), part(jnp.imag)


def complex_kernel(run: Callable, problem, real: PyTree, parts) -> PyTree:
    """Θ from :func:`real_problem`'s result (module docstring); ``run(problem, params)``
    computes one real kernel with the requested method."""
    if parts is None:
        return run(problem, real)
    u, v = parts

    def cross(p, q):
        return run(dataclasses.replace(problem, side1=dataclasses.replace(problem.side1, f=p),
                                       side2=dataclasses.replace(problem.side2, f=q)), real)

    uu, vv, vu, uv = cross(u, u), cross(v, v), cross(v, u), cross(u, v)
    return jax.tree_util.tree_map(lambda a, b, c, d: jax.lax.complex(a + b, c - d), uu, vv, vu, uv)
