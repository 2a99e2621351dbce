"""A program cut in two: what depends on side 1 alone, computed once for a band of tiles.

A tiled kernel runs one :class:`~ntkc.backends.program.Program` per tile. Under ``vmap_axes``
the operands (or Jacobians) of x1's examples depend on x1 and the parameters only, so a row band
of tiles — the same ``x1[i0:i1]`` against successive blocks of x2 — needs them once:
:func:`split` cuts a program into a **row** program (every step whose inputs come from
parameters, x1 and side 1's keyword arguments alone) and a **column** program (the rest, reading
the row program's results as inputs). Running the row program then the column program computes
what the whole program computes, step for step.

A structured program runs both sides' examples as one batch when they share a graph
(``Concat`` → one vmapped ``Call`` → ``Take`` of each side's part); :func:`unfuse` first undoes
that, using ``vmap(g)(concat(a, b)) == concat(vmap(g)(a), vmap(g)(b))``, so side 1's part can go
to the row program. Unsafe: nothing — a step the rules do not recognise stays where it is, in the
column program, and the cut is merely less useful.

>>> import numpy as np
>>> from ntkc.backends.program import Einsum, run
>>> prog = Program(inputs=("p0", "x1_0", "x2_0"), steps=(
...     Einsum(output="a", spec="i,i->i", args=("p0", "x1_0")),
...     Einsum(output="k", spec="i,j->ij", args=("a", "x2_0"))), outputs=("k",))
>>> cut = split(prog, row_inputs=("p0", "x1_0"))
>>> cut.row.outputs, cut.column.inputs
(('a',), ('a', 'x2_0'))
"""

from __future__ import annotations

import dataclasses

from ntkc.backends.program import Call, Concat, Program, Take


@dataclasses.dataclass(frozen=True)
class Split:
    """``row`` (inputs: the row inputs it reads; outputs: what ``column`` reads of it) and
    ``column`` (inputs: ``row``'s outputs, then the program inputs it reads)."""

    row: Program
    column: Program

    @property
    def useful(self) -> bool:
        """The row program computes something (not only passes inputs through)."""
        return bool(self.row.steps)


def _args(step) -> tuple[str, ...]:
    if hasattr(step, "args"):
        return tuple(step.args)
    return (step.arg,) if hasattr(step, "arg") else ()


def _outputs(step) -> tuple[str, ...]:
    return tuple(step.outputs) if hasattr(step, "outputs") else (step.output,)


def _readers(program: Program) -> dict[str, list]:
    readers: dict[str, list] = {}
    for step in program.steps:
        for arg in _args(step):
            readers.setdefault(arg, []).append(step)
    return readers


def unfuse(program: Program, side1: set, side2: set) -> Program:
    """``program`` with every vmapped ``Call`` over ``Concat`` s of a side-1 and a side-2 input
    (along the mapped axis), read only by ``Take`` s of each side's part, run once per side."""
    readers = _readers(program)
    concats = {s.output: s for s in program.steps if isinstance(s, Concat) and len(s.args) == 2
               and s.args[0] in side1 and s.args[1] in side2}
    replaced, steps = {}, []
    for step in program.steps:
        if isinstance(step, Call) and step.in_axes is not None and step.out_axes == 0 \
                and any(a in concats for a in step.args):
            takes = [r for o in step.outputs for r in readers.get(o, ())]
            mapped = [(a, axis) for a, axis in zip(step.args, step.in_axes) if a in concats]
            ok = all(isinstance(t, Take) and t.axis == 0 for t in takes) and len(takes) == 2 * len(step.outputs) \
                and all(concats[a].axis == axis for a, axis in mapped) \
                and all(axis is None for a, axis in zip(step.args, step.in_axes) if a not in concats)
            if ok:
                first = {t.arg: t.output for t in takes if t.start == 0}
                second = {t.arg: t.output for t in takes if t.start != 0 and t.stop is None}
                if set(first) == set(second) == set(step.outputs):
                    for k, (part, names) in enumerate(((0, first), (1, second))):
                        args = tuple(concats[a].args[part] if a in concats else a for a in step.args)
                        steps.append(dataclasses.replace(step, outputs=tuple(names[o] for o in step.outputs),
                                                         args=args, name=f"{step.name}{k + 1}"))
                    replaced.update({id(t): None for t in takes})
                    continue
        steps.append(step)
    steps = [s for s in steps if id(s) not in replaced]
    used = {a for s in steps for a in _args(s)} | set(program.outputs)
    steps = [s for s in steps if not (isinstance(s, Concat) and s.output not in used)]
    return dataclasses.replace(program, steps=tuple(steps))


def split(program: Program, row_inputs) -> Split:
    """Cut ``program`` after the steps computable from ``row_inputs`` alone (see the module
    docstring). A step without inputs (a constant) stays in the column program."""
    available = set(row_inputs)
    row_steps, column_steps = [], []
    for step in program.steps:
        args = _args(step)
        if args and all(a in available for a in args):
            row_steps.append(step)
            available.update(_outputs(step))
        else:
            column_steps.append(step)
    computed = {o for s in row_steps for o in _outputs(s)}
    read = [a for s in column_steps for a in _args(s)] + list(program.outputs)
    carried = tuple(dict.fromkeys(a for a in read if a in computed))
    row_read = {a for s in row_steps for a in _args(s)}
    row = Program(inputs=tuple(n for n in program.inputs if n in row_read), steps=tuple(row_steps), outputs=carried)
    produced = {o for s in column_steps for o in _outputs(s)}
    needed = [a for a in read if a not in produced and a not in computed]
    column_inputs = carried + tuple(n for n in program.inputs if n in set(needed))
    column = Program(inputs=column_inputs, steps=tuple(column_steps), outputs=program.outputs)
    return Split(row=row, column=column)


def mirrored(cut: Split, side1: tuple[str, ...], side2: tuple[str, ...]) -> tuple[Program, dict] | None:
    """The column program for a tile whose x2 examples are side 1's own (a band's diagonal, x2 =
    x1), and ``{column name: row name}``: every column ``Call`` that applies a row ``Call``'s
    function to side 2's counterparts of its inputs (``side1[i]`` ↔ ``side2[i]``) is dropped,
    its outputs becoming inputs — the row's results for those examples. None when no call
    mirrors one of the row's, or a mirrored result the column reads is not among the row
    program's outputs.

    >>> from ntkc.backends.program import Einsum
    >>> prog = Program(inputs=("p0", "x1_0", "x2_0"), steps=(
    ...     Call(outputs=("a",), fn=abs, args=("p0", "x1_0"), name="g", in_axes=(None, 0)),
    ...     Call(outputs=("b",), fn=abs, args=("p0", "x2_0"), name="g", in_axes=(None, 0)),
    ...     Einsum(output="k", spec="i,j->ij", args=("a", "b"))), outputs=("k",))
    >>> program, aliases = mirrored(split(prog, ("p0", "x1_0")), ("x1_0",), ("x2_0",))
    >>> [type(s).__name__ for s in program.steps], program.inputs, aliases
    (['Einsum'], ('a', 'b'), {'b': 'a'})
    """
    counterpart = dict(zip(side1, side2))
    row_calls = [s for s in cut.row.steps if isinstance(s, Call)]
    carried = set(cut.row.outputs)
    aliases, steps = {}, []
    for step in cut.column.steps:
        twin = next((r for r in row_calls if isinstance(step, Call) and r.fn is step.fn
                     and r.in_axes == step.in_axes and r.out_axes == step.out_axes
                     and step.args == tuple(counterpart.get(a, a) for a in r.args)), None)
        if twin is None:
            steps.append(step)
            continue
        aliases.update(zip(step.outputs, twin.outputs))
    read = {a for s in steps for a in _args(s)} | set(cut.column.outputs)
    aliases = {name: source for name, source in aliases.items() if name in read}
    if not aliases or not set(aliases.values()) <= carried:
        return None
    inputs = tuple(n for n in cut.column.inputs if n in read) + tuple(a for a in aliases if a in read)
    return Program(inputs=inputs, steps=tuple(steps), outputs=cut.column.outputs), aliases
