"""Readable text of a compilation: each side's uses and each kernel's sum of einsum terms.

>>> from ntkc.ir.terms import Contraction, Operand
>>> op = Operand(side=1, kind="factor", index=0, factor=0, labels=("a", "θ0.0"), shape=(2, 3))
>>> render_contraction(Contraction(operands=(op,), output=("a",), scale=3.0))
'3 · einsum(1.factor[0.0](a,θ0.0) -> (a))'
"""

from __future__ import annotations


def _operand(op) -> str:
    name = f"{op.side}.{op.kind}[{op.index}" + (f".{op.factor}]" if op.factor is not None else "]")
    return f"{name}({','.join(op.labels)})"


def render_contraction(c) -> str:
    scale = "" if c.scale == 1.0 else f"{c.scale:g} · "
    text = f"{scale}einsum({', '.join(_operand(o) for o in c.operands)} -> ({','.join(c.output)}))"
    if c.path is not None:
        text += f"  path={list(c.path)} flops={c.flops:,} largest={c.largest:,}"
    return text


def render_uses(side_ir, k: int) -> list[str]:
    lines = [f"side {k}: {len(side_ir.graph.eqns)} equations, {len(side_ir.uses)} uses"]
    for i, u in enumerate(side_ir.uses):
        f = u.form
        factors = ", ".join(f"{s.recipe}({','.join(s.labels)})" for s in f.factors) or "-"
        where = "" if u.loop is None else \
            f" in loop ×{u.loop.length} ({'stacked: θ[t]' if u.loop.stacked else 'shared'})"
        lines.append(f"  use {i}: θ{u.leaf} -> {u.primitives}{where} [{f.kind}] out=({','.join(f.out_labels)}) "
                     f"θ=({','.join(f.theta_labels)}) factors={factors} scale={f.scale:g}")
    for t in side_ir.targets:
        lines.append(f"  cotangent of {t.var!r} summed over axes {list(t.summed)}")
    return lines


def render(comp) -> str:
    lines = []
    for k, side in enumerate(comp.sides, 1):
        lines.extend(render_uses(side, k))
    for kernel in comp.kernels:
        lines.append(f"kernel {kernel.output}: result ({','.join(kernel.result)}) {list(kernel.result_shape)} "
                     f"/ {kernel.trace_size}, {len(kernel.terms)} terms, flops={kernel.flops}")
        for i, c in enumerate(kernel.shared):
            lines.append(f"  shared[{i}] = {render_contraction(c)}")
        for jac in kernel.jacobians:
            lines.append(f"  J{jac.side}[θ{jac.leaf}]({','.join(jac.labels)}) = sum of")
            lines.extend(f"    {render_contraction(p)}" for p in jac.parts)
        for term in kernel.terms:
            lines.append(f"  += {render_contraction(term.contraction)}  # θ{term.leaf}: {term.note}")
    return "\n".join(lines)
