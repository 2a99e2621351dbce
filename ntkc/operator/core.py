"""The NTK as a linear operator: :func:`ntk_operator` and :class:`NTKOperator`."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntkc.ir.from_jaxpr import is_tracer
from ntkc.operator import choice as choosing
from ntkc.operator.products import Products
from ntkc.operator.rows import Rows, examples_first, rows_of

PyTree = Any

#: Examples per side of the chunk measured to price a product and size chunks.
PROBE_CHUNK = 32


def _analysis(compiled) -> tuple[float, int]:
    """(FLOPs, bytes of the working set) of a compiled program, from XLA's analyses."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    stats = compiled.memory_analysis()
    used = 0 if stats is None else (stats.argument_size_in_bytes + stats.output_size_in_bytes
                                    + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
    return float((cost or {}).get("flops", 0.0)), int(used)


def _spec(leaf):
    return jax.ShapeDtypeStruct(jnp.shape(leaf), jnp.result_type(leaf))


@dataclasses.dataclass(eq=False)
class Held:
    """What an operator and its shifted copies share: the problem, the measured product, the
    chosen mode and (dense) the matrix. Hashed by identity (it is the operators' static part
    under ``jax.jit``)."""

    f: Callable
    params: PyTree
    x1: PyTree
    x2: PyTree | None
    rows1: Rows
    rows2: Rows
    trace_axes: tuple[int, ...]
    vmap_axes: Any
    requested: str
    budget: int
    mesh: Any
    expected_products: int | None
    x1_first: PyTree = None
    x2_first: PyTree = None
    products: Products | None = None
    per_example_bytes: int | None = None
    product_flops: float | None = None
    choice: choosing.Choice | None = None
    matrix: Any = None
    factors: dict = dataclasses.field(default_factory=dict)

    @property
    def square(self) -> bool:
        return self.x2 is None

    @property
    def dtype(self):
        return jnp.result_type(*jax.tree_util.tree_leaves(self.params))

    @property
    def matrix_bytes(self) -> int:
        return self.rows1.size * self.rows2.size * jnp.dtype(self.dtype).itemsize

    def measure(self) -> None:
        """Compile one chunk's product to price a product and size the chunks (once)."""
        if self.product_flops is not None:
            return
        size = min(PROBE_CHUNK, max(self.rows1.n, self.rows2.n))
        specs = lambda tree: jax.tree_util.tree_map(_spec, tree)
        compiled = self.products.chunk_program(specs(self.params), specs(self.x1_first), specs(self.x2_first), size)
        flops, used = _analysis(compiled)
        chunk1, chunk2 = min(size, self.rows1.n), min(size, self.rows2.n)
        self.product_flops = flops * max(self.rows1.n / chunk1, self.rows2.n / chunk2)
        rest = used - self.vector_bytes - self.params_bytes  # what grows with the chunk's examples
        self.per_example_bytes = max(1, math.ceil(max(rest, used / 4) / max(chunk1, chunk2)))

    @property
    def params_bytes(self) -> int:
        return sum(int(np.prod(np.shape(leaf))) * jnp.dtype(leaf.dtype).itemsize
                   for leaf in jax.tree_util.tree_leaves(self.params))

    @property
    def vector_bytes(self) -> int:
        """What one vector of a product holds whatever the chunk: its T parameter-shaped pulls
        (the running sum, a chunk's part, and the pushes' tangents)."""
        return 3 * self.rows2.traced * self.params_bytes

    def group(self, vectors: int) -> int:
        """Vectors a product runs at once: all of them, unless their parameter-shaped pulls
        alone would take more than half the budget (then groups run one after another)."""
        return max(1, min(vectors, self.budget // (2 * self.vector_bytes)))

    def chunk(self, vectors: int) -> int:
        """Examples per chunk for a product of ``vectors`` vectors (at once) within the budget."""
        self.measure()
        vectors = max(1, vectors)
        fits = max(0, self.budget - vectors * self.vector_bytes) // (self.per_example_bytes * vectors)
        n = max(self.rows1.n, self.rows2.n)
        count = math.ceil(n / max(1, min(n, fits)))
        return math.ceil(n / count)

    def decide(self, products: int | None) -> choosing.Choice:
        """Resolve the mode (once): as requested, or priced for ``products`` products."""
        if self.choice is not None:
            return self.choice
        products = self.expected_products or products or 1
        if self.requested != "auto":
            self.choice = choosing.Choice(self.requested, products, None, None, "requested")
        else:
            self.choice = self._priced(products)
        if self.choice.mode == "matrix_free" and self.mesh is not None:
            warnings.warn("matrix-free products run on one device; `mesh` spreads the dense matrix's tiles "
                          "(mode='dense')", UserWarning, stacklevel=4)
        return self.choice

    def _priced(self, products: int) -> choosing.Choice:
        from ntkc.tiling import tile_plan
        from ntkc.tiling.pricing import matmul_rate

        self.measure()
        rate = matmul_rate()
        free = self.product_flops / rate
        dense_product = 2.0 * self.rows1.size * self.rows2.size / rate
        if self.matrix_bytes > self.budget:
            return choosing.choose(products, self.matrix_bytes, self.budget, None, dense_product, free)
        plan = tile_plan(self.f, self.params, self.x1, self.x2, trace_axes=self.trace_axes,
                         vmap_axes=self.vmap_axes, memory_limit=self.tile_budget(), mesh=self.mesh)
        return choosing.choose(products, self.matrix_bytes, self.budget, plan.seconds, dense_product, free)

    def tile_budget(self) -> int:
        return max(self.budget - self.matrix_bytes, self.budget // 4)

    def kernel(self, sharded: bool = False, **axes) -> np.ndarray:
        """The tiled kernel (:func:`ntkc.ntk_matrix`) with these axis settings, its tiles spread
        over the mesh; ``sharded``: kept on the mesh's devices, split by rows, when they divide
        evenly (else assembled on the host)."""
        from ntkc.tiling import ntk_matrix
        from ntkc.tiling.driver import SHARDED

        split = sharded and self.mesh is not None and self.rows1.n % self.mesh.size == 0
        return ntk_matrix(self.f, self.params, self.x1, self.x2, vmap_axes=self.vmap_axes,
                          memory_limit=self.tile_budget(), mesh=self.mesh, out=SHARDED if split else None, **axes)

    def kept_axes(self) -> list[int]:
        ndim = len(self.rows1.untraced) + 1 + len(self.rows1.trace_axes)
        return [a for a in range(ndim) if a not in self.trace_axes]

    def build(self) -> None:
        """The matrix, ``(N1·U, N2·U)`` (once)."""
        if self.matrix is not None:
            return
        kernel = self.kernel(sharded=True, trace_axes=self.trace_axes)
        kept = self.kept_axes()
        position = kept.index(self.rows1.out_axis)
        order = [position] + [i for i in range(len(kept)) if i != position]
        axes = [2 * i for i in order] + [2 * i + 1 for i in order]
        matrix = jnp.transpose(jnp.asarray(kernel), axes)
        self.matrix = matrix.reshape(self.rows1.size, self.rows2.size)


def _flatten(op: "NTKOperator"):
    held = op._held
    held.decide(None)
    if held.choice.mode == "dense":
        held.build()
        leaves = (None, None, None, held.matrix)
    else:
        held.measure()
        leaves = (held.params, held.x1_first, held.x2_first, None)
    return (leaves, op._shift), held


def _unflatten(held: Held, children) -> "NTKOperator":
    leaves, shift = children
    return NTKOperator(held, shift, leaves)


class NTKOperator:
    """The empirical NTK of ``f`` on examples as a linear operator (see :func:`ntk_operator`).

    Square (x2 = None) operators are symmetric positive semi-definite; ``op + lam * ntkc.identity``
    adds ``lam`` to the diagonal. Passes through ``jax.jit`` as an argument (a pytree: its mode
    is settled, and a dense matrix built, when it is first flattened).

    Example:
      >>> import jax.numpy as jnp, numpy as np, ntkc
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": np.linspace(-1, 1, 48, dtype=np.float32).reshape(3, 16),
      ...           "v": np.linspace(-1, 1, 32, dtype=np.float32).reshape(16, 2)}
      >>> x = np.linspace(-1, 1, 30, dtype=np.float32).reshape(10, 3)
      >>> op = ntkc.ntk_operator(f, params, x, mode="dense")
      >>> op.shape, (op @ np.ones(10, np.float32)).shape
      ((10, 10), (10,))
      >>> K = np.asarray(op.to_dense())
      >>> bool(np.allclose(op.trace(), np.trace(K), rtol=1e-5))
      True
      >>> reg = op + 0.5 * ntkc.identity                          # K + 0.5 I
      >>> bool(np.allclose(reg.diagonal(), op.diagonal() + 0.5, rtol=1e-5))
      True
    """

    def __init__(self, held: Held, shift=0.0, leaves=None):
        self._held = held
        self._shift = shift
        self._leaves = leaves

    # -- what it is -----------------------------------------------------------------------
    @property
    def vector_shape(self) -> tuple[int, ...]:
        """The shape of the vectors it takes: x2's (x1's when square) row shape ``(N, *U)``."""
        return self._held.rows2.shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The shape of ``op @ v`` for one vector: x1's row shape."""
        return self._held.rows1.shape

    @property
    def shape(self) -> tuple[int, int]:
        """The shape of the matrix it stands for: ``(N1·U, N2·U)``."""
        return self._held.rows1.size, self._held.rows2.size

    @property
    def dtype(self):
        return self._held.dtype

    @property
    def mode(self) -> str:
        """``"dense"`` or ``"matrix_free"`` (settled now if it was ``"auto"``)."""
        return self._held.decide(None).mode

    @property
    def choice(self) -> choosing.Choice:
        """The mode and why it was chosen (predicted times when ``"auto"`` priced it)."""
        return self._held.decide(None)

    @property
    def shift(self):
        """The multiple of the identity added to the kernel."""
        return self._shift

    @property
    def square(self) -> bool:
        return self._held.square

    def __repr__(self) -> str:
        held = self._held
        mode = held.choice.mode if held.choice is not None else held.requested
        shift = f" + {self._shift}·I" if not isinstance(self._shift, (int, float)) or self._shift else ""
        return f"NTKOperator({held.rows1.shape} ← {held.rows2.shape}, mode={mode!r}{shift})"

    # -- arithmetic -------------------------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, ScaledIdentity):
            self._need_square("adding a multiple of the identity")
            return NTKOperator(self._held, self._shift + other.scale, self._leaves)
        raise TypeError(f"an NTKOperator adds `lam * ntkc.identity` (a multiple of the identity), not "
                        f"{type(other).__name__}; write `op + {other!r} * ntkc.identity` for a shift")

    __radd__ = __add__

    def __matmul__(self, v):
        return self.matvec(v)

    def __call__(self, v):
        """``op(v) == op @ v``: the operator as a plain function (e.g. for
        ``jax.scipy.sparse.linalg.cg``)."""
        return self.matvec(v)

    def matvec(self, v):
        """``op @ v`` for ``v`` of :attr:`vector_shape`, or a batch of them along a trailing axis."""
        v, single = self._vectors(v)
        out = self._apply(v)
        return out[..., 0] if single else out

    def _vectors(self, v):
        shape = self.vector_shape
        if not hasattr(v, "shape"):
            v = jnp.asarray(v)
        if tuple(v.shape) == shape:
            return jnp.asarray(v)[..., None], True
        if tuple(v.shape[:-1]) == shape and v.ndim == len(shape) + 1:
            return jnp.asarray(v), False
        raise ValueError(f"`v` has shape {tuple(v.shape)}; this operator takes vectors of shape {shape} "
                         f"(or a batch of k of them, shape {shape + ('k',)})")

    def _apply(self, v):
        held = self._held
        mode = held.decide(None).mode
        params, x1f, x2f, matrix = self._leaves or (held.params, held.x1_first, held.x2_first, held.matrix)
        k = v.shape[-1]
        if mode == "dense":
            if matrix is None:
                held.build()
                matrix = held.matrix
            out = (matrix @ v.reshape(held.rows2.size, k).astype(matrix.dtype)).reshape(held.rows1.shape + (k,))
        else:
            group = held.group(k)
            chunk = held.chunk(group)
            out = _free_product(held.products, chunk, group, params, x1f, x2f, v)
        if self.square:
            out = out + self._shift * v.astype(out.dtype)
        return out

    def _need_square(self, what: str) -> None:
        if not self.square:
            raise ValueError(f"{what} needs a square operator (x2 = None): this one maps x2's rows "
                             f"{self.vector_shape} to x1's {self.output_shape}")

    # -- the matrix and its diagonal ----------------------------------------------------------
    def to_dense(self) -> np.ndarray:
        """The matrix ``(N1·U, N2·U)`` as a NumPy array (rows and columns in row-major order of
        the row shapes): ``op.to_dense() @ v.ravel() == (op @ v).ravel()``. A matrix-free
        operator computes it tile by tile (:func:`ntkc.ntk_matrix`) without keeping it."""
        held = self._held
        if held.matrix is not None:
            matrix = np.asarray(held.matrix)
        else:
            saved = held.matrix
            held.build()
            matrix = np.asarray(held.matrix)
            if held.decide(None).mode != "dense":
                held.matrix = saved
        if self.square and self._shift:
            matrix = matrix + self._shift * np.eye(matrix.shape[0], dtype=matrix.dtype)
        return matrix

    def diagonal(self) -> np.ndarray:
        """The exact diagonal, shaped like a vector: ``K[a, a, u, u]`` (+ the shift)."""
        self._need_square("the diagonal")
        held = self._held
        if held.matrix is not None:
            diag = np.diagonal(np.asarray(held.matrix)).reshape(held.rows1.shape)
        else:
            kept = held.kept_axes()
            diag = np.asarray(held.kernel(trace_axes=held.trace_axes, diagonal_axes=tuple(kept)))
            diag = np.moveaxis(diag, kept.index(held.rows1.out_axis), 0)
        return diag + self._shift

    # -- linear algebra ---------------------------------------------------------------------------
    def trace(self) -> float:
        """The exact trace, the sum of :meth:`diagonal`."""
        return float(np.sum(self.diagonal(), dtype=np.float64))

    def solve(self, b, *, rtol: float = 1e-6, maxiter: int | None = None, preconditioner_rank: int | None = None):
        """``x`` with ``op @ x = b`` (b a vector or a batch of them, like ``op @ v``).

        Dense: a Cholesky factorization, kept for the next solve (an eigendecomposition when the
        matrix is singular, with a warning; the least-squares solution). Matrix-free: conjugate
        gradients, all right-hand sides at once, preconditioned by a randomized Nyström
        approximation of rank ``preconditioner_rank`` (default: ``min(100, n // 4)``); a solve that
        does not reach ``rtol`` within ``maxiter`` iterations warns with the residual reached.
        """
        from ntkc.linalg import solve

        self._need_square("solve")
        return solve.solve(self, b, rtol=rtol, maxiter=maxiter, rank=preconditioner_rank)

    def eigvalsh(self, k: int = 6, *, tol: float = 1e-6, return_bounds: bool = False):
        """The ``k`` largest eigenvalues, largest first (Lanczos with reorthogonalization, ARPACK's;
        an exact partial ``eigh`` for a dense operator). ``return_bounds=True`` also returns
        each value's residual bound ``‖op u − λ u‖ ≥ |λ − λ_true|`` (u its unit Ritz vector)."""
        from ntkc.linalg import spectrum

        self._need_square("eigvalsh")
        values, bounds = spectrum.top_eigenvalues(self, k, tol=tol)
        return (values, bounds) if return_bounds else values

    def condition_number(self, *, tol: float = 1e-6) -> float:
        """``λ_max / λ_min``; ``inf`` with a warning when the kernel is singular (always when the
        kernel has more rows than the model has parameters)."""
        from ntkc.linalg import spectrum

        self._need_square("condition_number")
        return spectrum.condition_number(self, tol=tol)

    def frobenius_norm(self, *, samples: int = 60, seed: int = 0) -> tuple[float, float]:
        """``(estimate, error)`` of ``‖K‖_F``: exact (error 0) for a dense operator, Hutch++ on
        ``K²`` with ``samples`` products otherwise (error: three standard deviations of the
        estimate, from its random part's sample variance — itself an estimate, from a third of
        the samples)."""
        from ntkc.linalg import spectrum

        self._need_square("frobenius_norm")
        return spectrum.frobenius_norm(self, samples=samples, seed=seed)

    def alignment(self, y, *, samples: int = 60, seed: int = 0) -> tuple[float, float]:
        """``(estimate, error)`` of the kernel-target alignment ``⟨K, y yᵀ⟩ / (‖K‖_F ‖y yᵀ‖_F)``
        for targets ``y`` of :attr:`vector_shape` or a batch of them (``y yᵀ`` summed over the
        batch); the error comes from :meth:`frobenius_norm`'s."""
        from ntkc.linalg import spectrum

        self._need_square("alignment")
        return spectrum.alignment(self, y, samples=samples, seed=seed)

    def as_lineax(self):
        """The operator as a ``lineax.FunctionLinearOperator`` tagged symmetric and positive
        semi-definite (needs ``pip install lineax``)."""
        try:
            import lineax
        except ImportError as e:
            raise ImportError("`as_lineax` needs lineax: pip install lineax") from e
        self._need_square("as_lineax")
        spec = jax.ShapeDtypeStruct(self.vector_shape, self.dtype)
        return lineax.FunctionLinearOperator(self.matvec, spec,
                                             tags=(lineax.symmetric_tag, lineax.positive_semidefinite_tag))


jax.tree_util.register_pytree_node(NTKOperator, _flatten, _unflatten)


@dataclasses.dataclass(frozen=True)
class ScaledIdentity:
    """``scale · I``: what ``lam * ntkc.identity`` is, to be added to an :class:`NTKOperator`."""

    scale: Any = 1.0

    def __mul__(self, other):
        return ScaledIdentity(self.scale * other)

    __rmul__ = __mul__


#: The identity: ``op + lam * ntkc.identity`` is ``K + lam·I``.
identity = ScaledIdentity(1.0)
"""The identity operator, to regularize an :class:`NTKOperator`: ``op + lam * ntkc.identity`` is
the operator ``K + lam·I`` (the same shapes, ``lam`` added to the diagonal).

Example:
  >>> import jax.numpy as jnp, numpy as np, ntkc
  >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
  >>> params = {"w": np.ones((3, 16), np.float32) / 3, "v": np.ones((16, 2), np.float32) / 4}
  >>> op = ntkc.ntk_operator(f, params, np.ones((6, 3), np.float32), mode="dense")
  >>> v = np.ones(6, np.float32)
  >>> bool(np.allclose((op + 2.0 * ntkc.identity) @ v, op @ v + 2.0 * v, rtol=1e-5))
  True
"""


def _free_product(products, chunk, group, params, x1f, x2f, v):
    """The matrix-free product of ``v (..., k)``: one traceable program inside a trace (an
    operator used under ``jax.jit``), else run chunk by chunk from Python (products.run) with
    ``group`` vectors at a time."""
    if any(is_tracer(leaf) for leaf in jax.tree_util.tree_leaves((params, x1f, x2f, v))):
        return _APPLY(products, chunk, group, params, x1f, x2f, v)
    k = v.shape[-1]
    parts = [products.run(params, x1f, x2f, v[..., j:j + group], chunk) for j in range(0, k, group)]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


def _apply_free(products, chunk, group, params, x1f, x2f, v):
    """The matrix-free product of ``v (..., k)`` as one program, ``group`` vectors at a time
    (zero vectors pad the last group)."""
    k = v.shape[-1]
    if group >= k:
        return products.apply(params, x1f, x2f, v, chunk)
    count = -(-k // group)
    padded = jnp.concatenate([v, jnp.zeros(v.shape[:-1] + (count * group - k,), v.dtype)], axis=-1)
    groups = jnp.moveaxis(padded.reshape(v.shape[:-1] + (count, group)), -2, 0)
    out = jax.lax.map(lambda part: products.apply(params, x1f, x2f, part, chunk), groups)
    out = jnp.moveaxis(out, 0, -2)
    return out.reshape(out.shape[:-2] + (count * group,))[..., :k]


_APPLY = jax.jit(_apply_free, static_argnums=(0, 1, 2))


def ntk_operator(f: Callable, params: PyTree, x1: PyTree, x2: PyTree | None = None, *,
                 trace_axes: Sequence[int] = (-1,), vmap_axes: Any = 0, mode: str = "auto",
                 memory_limit: int | None = None, mesh=None, expected_products: int | None = None) -> NTKOperator:
    """The empirical NTK of ``f`` on ``x1`` (with itself, or with ``x2``) as a linear operator.

    It acts on vectors of x2's row shape ``(N2, *U)`` — ``(N,)`` for a kernel traced over the
    output's last axis, ``(N, O)`` for a full one, ``U`` being one example's output shape
    without its traced axes — so that ``(op @ v)[a, i] = Σ_b,j K[a, b, i, j] v[b, j]``, ``K`` what
    ``ntkc.ntk_fn(f, trace_axes=trace_axes)(x1, x2, params)`` returns; ``op @ V`` with a trailing
    axis of size k applies it to k vectors at once.

    Args:
      mode: ``"matrix_free"`` applies ``J (Jᵀ v)`` without forming J or K: a VJP and a JVP over
        the examples per product and vector — and per traced output component, so a kernel
        traced over O logits pays O of them; ``"dense"`` builds the matrix once (tiled,
        :func:`ntkc.ntk_matrix`; sharded over ``mesh``) and multiplies; ``"auto"`` prices both
        for ``expected_products`` products (:attr:`NTKOperator.choice` says what it chose and why).
      memory_limit: bytes for the operator's working set — the dense matrix and its tiles, or
        a product's chunks of examples. None: half of the memory available now.
      mesh: a ``jax.sharding.Mesh`` (or ``"all"``) the dense matrix's tiles are spread over;
        the matrix stays on its devices, split by rows, when they divide the examples evenly.
        Matrix-free products run on one device.
      expected_products: how many products the operator will serve, for ``"auto"``; None: the
        solver using it says (``solve``, ``eigvalsh``, ``ntkc.predict``), else one.

    >>> import jax.numpy as jnp, numpy as np, ntkc
    >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
    >>> params = {"w": np.linspace(-1, 1, 48, dtype=np.float32).reshape(3, 16),
    ...           "v": np.linspace(-1, 1, 32, dtype=np.float32).reshape(16, 2)}
    >>> x = np.linspace(-1, 1, 30, dtype=np.float32).reshape(10, 3)
    >>> op = ntkc.ntk_operator(f, params, x, trace_axes=(), mode="matrix_free")
    >>> op.vector_shape, op.shape
    ((10, 2), (20, 20))
    >>> v = np.ones((10, 2), np.float32)
    >>> K = ntkc.ntk_fn(f, trace_axes=())(x, None, params)         # (10, 10, 2, 2)
    >>> Kv = np.einsum("abij,bj->ai", K, v)
    >>> bool(np.allclose(op @ v, Kv, rtol=1e-5, atol=1e-5 * np.abs(Kv).max()))
    True
    """
    if mode not in choosing.MODES:
        raise ValueError(f"`mode` must be one of {choosing.MODES}, got {mode!r}")
    if memory_limit is not None and (not isinstance(memory_limit, int) or memory_limit <= 0):
        raise ValueError(f"`memory_limit` must be a positive number of bytes, got {memory_limit!r}")
    if expected_products is not None and (not isinstance(expected_products, int) or expected_products < 1):
        raise ValueError(f"`expected_products` must be a positive int, got {expected_products!r}")
    if not callable(f):
        raise TypeError(f"`f` must be callable as f(params, x), got {type(f).__name__}")
    from ntkc.tiling.devices import resolve_mesh
    from ntkc.tiling.pricing import available_memory

    rows1 = rows_of(f, params, x1, trace_axes, vmap_axes, argname="x1")
    rows2 = rows1 if x2 is None else rows_of(f, params, x2, trace_axes, vmap_axes, argname="x2")
    if x2 is not None and rows2.untraced != rows1.untraced:
        raise ValueError(f"`x2`'s outputs have untraced shape {rows2.untraced}, x1's {rows1.untraced}: the "
                         "kernel pairs output components, so they must match")
    budget = memory_limit if memory_limit is not None else available_memory() // 2
    x1_first = examples_first(x1, rows1)
    held = Held(f=f, params=jax.tree_util.tree_map(jnp.asarray, params), x1=x1, x2=x2, rows1=rows1, rows2=rows2,
                trace_axes=rows1.trace_axes, vmap_axes=vmap_axes, requested=mode, budget=budget,
                mesh=resolve_mesh(mesh), expected_products=expected_products, x1_first=x1_first,
                x2_first=x1_first if x2 is None else examples_first(x2, rows2))
    held.products = Products(f, rows1, rows2, forward=_forward_mode(f, held.params, x1_first, rows1))
    return NTKOperator(held)


def _forward_mode(f, params, x1_first, rows1) -> bool:
    """Whether JAX linearizes ``f`` forward on one example of x1 (not through a custom_vjp)."""
    from ntkc.operator.products import _split, has_forward_mode
    from ntkc.operator.rows import batch_first

    batched, shared, join = _split(x1_first, rows1)
    example = join([jax.ShapeDtypeStruct((1,) + leaf.shape[1:], leaf.dtype) for leaf in batched], shared)
    return has_forward_mode(batch_first(f, rows1), params, example)
