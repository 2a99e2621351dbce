"""The executor program: a short list of steps over named arrays, the one thing that both runs
(:func:`run`) and is written out as source (:mod:`ntkc.export`).

Each method turns a plan into a :class:`Program` (planning is separate from execution, as in
opt_einsum's ``contract_path`` / ``contract_expression``). Steps are inert data:

* :class:`Call` — a function of the backend (a side's operands, a per-example Jacobian, the
  NTK-vector products) applied to named arrays, under ``jax.vmap`` over examples when it has
  ``in_axes``; the exporter traces the same function and prints its equations;
* :class:`Einsum` — one contraction of the plan, along its recorded pairwise path;
* :class:`Sum`, :class:`Finish` (divide by the traced size, cast), :class:`Concat` /
  :class:`Take` (both sides' examples in one batch, and apart again), :class:`Constant`,
  :class:`Zeros`.

Every step but :class:`Call` has ``run(env)`` and, beside it, ``source(ref, value)``: the Python
expression computing the same thing (``ref(name)`` is a named array's identifier, ``value(v)``
a constant's source), so the exported program is written by the code that runs.

>>> import numpy as np
>>> prog = Program(inputs=("a", "b"), steps=(
...     Einsum(output="ab", spec="i,j->ij", args=("a", "b")),
...     Finish(output="k", arg="ab", divisor=2, dtype=np.float32)), outputs=("k",))
>>> run(prog, {"a": np.ones(2), "b": np.ones(3)})[0].shape
(2, 3)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class Call:
    """``outputs = fn(*args)``; with ``in_axes``, ``jax.vmap(fn, in_axes, out_axes)`` (one call
    per example). ``fn`` returns a sequence with one array per output. ``name`` and ``doc`` name
    the function in exported source."""

    outputs: tuple[str, ...]
    fn: Callable
    args: tuple[str, ...]
    name: str
    doc: str = ""
    in_axes: tuple | None = None
    out_axes: Any = 0

    def run(self, env: dict) -> dict:
        fn = lambda *args: tuple(self.fn(*args))
        if self.in_axes is not None:
            fn = jax.vmap(fn, in_axes=self.in_axes, out_axes=self.out_axes)
        return dict(zip(self.outputs, fn(*(env[a] for a in self.args)), strict=True))


@dataclasses.dataclass(frozen=True)
class Einsum:
    """``output = scale · einsum(spec, *args)`` along ``path``; ``broadcast`` = (shape with 1s,
    full shape) broadcasts output labels no operand carries. ``note`` comments the term."""

    output: str
    spec: str
    args: tuple[str, ...]
    path: tuple | None = None
    scale: float = 1.0
    broadcast: tuple | None = None
    note: str = ""

    def run(self, env: dict) -> dict:
        value = jnp.einsum(self.spec, *(env[a] for a in self.args),
                           optimize=list(self.path) if self.path else "optimal", precision=HIGHEST)
        if self.broadcast is not None:
            value = jnp.broadcast_to(value.reshape(self.broadcast[0]), self.broadcast[1])
        return {self.output: value * self.scale if self.scale != 1.0 else value}

    def source(self, ref, value) -> str:
        path = list(self.path) if self.path else "optimal"
        text = (f"jnp.einsum({self.spec!r}, {', '.join(ref(a) for a in self.args)}, optimize={path!r}, "
                "precision=HIGHEST)")
        if self.broadcast is not None:
            text = f"jnp.broadcast_to({text}.reshape({self.broadcast[0]!r}), {self.broadcast[1]!r})"
        return text if self.scale == 1.0 else f"{text} * {self.scale!r}"


@dataclasses.dataclass(frozen=True)
class Sum:
    """``output = args[0] + args[1] + ...``."""

    output: str
    args: tuple[str, ...]

    def run(self, env: dict) -> dict:
        values = [env[a] for a in self.args]
        return {self.output: sum(values[1:], values[0])}

    def source(self, ref, value) -> str:
        return " + ".join(ref(a) for a in self.args)


@dataclasses.dataclass(frozen=True)
class Finish:
    """``output = (arg / divisor).astype(dtype)``: the traced axes' mean, in f's output dtype."""

    output: str
    arg: str
    divisor: int
    dtype: Any

    def run(self, env: dict) -> dict:
        value = env[self.arg] if self.divisor == 1 else env[self.arg] / self.divisor
        return {self.output: value.astype(self.dtype)}

    def source(self, ref, value) -> str:
        mean = ref(self.arg) if self.divisor == 1 else f"({ref(self.arg)} / {self.divisor})"
        return f"{mean}.astype({value(np.dtype(self.dtype))})"


@dataclasses.dataclass(frozen=True)
class Concat:
    """``output = concatenate(args, axis)``."""

    output: str
    args: tuple[str, ...]
    axis: int

    def run(self, env: dict) -> dict:
        return {self.output: jnp.concatenate([env[a] for a in self.args], axis=self.axis)}

    def source(self, ref, value) -> str:
        return f"jnp.concatenate([{', '.join(ref(a) for a in self.args)}], axis={self.axis})"


@dataclasses.dataclass(frozen=True)
class Take:
    """``output = arg[start:stop]`` along ``axis``."""

    output: str
    arg: str
    axis: int
    start: int
    stop: int | None

    def run(self, env: dict) -> dict:
        return {self.output: jax.lax.slice_in_dim(env[self.arg], self.start, self.stop, axis=self.axis)}

    def source(self, ref, value) -> str:
        return f"lax.slice_in_dim({ref(self.arg)}, {self.start}, {self.stop}, axis={self.axis})"


@dataclasses.dataclass(frozen=True)
class Constant:
    """``output`` = a constant array (a factor fixed at plan time)."""

    output: str
    value: Any = dataclasses.field(repr=False)

    def run(self, env: dict) -> dict:
        return {self.output: jnp.asarray(self.value)}

    def source(self, ref, value) -> str:
        return value(np.asarray(self.value))


@dataclasses.dataclass(frozen=True)
class Zeros:
    """``output = zeros(shape, dtype)`` (a kernel of an output that does not depend on params)."""

    output: str
    shape: tuple[int, ...]
    dtype: Any

    def run(self, env: dict) -> dict:
        return {self.output: jnp.zeros(self.shape, self.dtype)}

    def source(self, ref, value) -> str:
        return f"jnp.zeros({self.shape!r}, {value(np.dtype(self.dtype))})"


Step = Call | Einsum | Sum | Finish | Concat | Take | Constant | Zeros


@dataclasses.dataclass(frozen=True)
class Program:
    """Named ``inputs`` (the leaves of the kernel's arguments, in order), ``steps``, and the
    names of the ``outputs`` (one kernel per output leaf)."""

    inputs: tuple[str, ...]
    steps: tuple[Step, ...]
    outputs: tuple[str, ...]


def run(program: Program, values: dict) -> list:
    """Execute ``program`` on ``values`` (input name -> array); the output arrays, in order."""
    env = dict(values)
    for step in program.steps:
        env.update(step.run(env))
    return [env[name] for name in program.outputs]


def shapes(program: Program, specs: dict) -> dict:
    """Every named value's ``jax.ShapeDtypeStruct`` (abstract evaluation of :func:`run`)."""
    def everything(values):
        env = dict(values)
        for step in program.steps:
            env.update(step.run(env))
        return env
    return jax.eval_shape(everything, specs)
