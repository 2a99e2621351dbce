"""A griffe extension for the API reference: ntkc's docstrings are written for both
``help()`` and the site, so before mkdocstrings renders them this

* turns Sphinx roles (``:func:`ntkc.plan```) into code, linked when the target is a public name
  the reference documents;
* fences doctest blocks (``>>> ...`` and their output) as ``pycon`` code, so Markdown does not
  read ``>>>`` as nested quotes;
* turns reST simple tables (``====  ====`` borders) into Markdown tables.

Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import re

import griffe

#: Targets the reference documents: a role naming one of them becomes a link.
PUBLIC = {"ntkc", "ntkc.predict", "ntkc.adapters", "ntkc.predict.gradient_descent_mse",
          *(f"ntkc.adapters.{n}" for n in ("from_linen", "from_nnx", "from_equinox", "from_haiku"))}
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const):`~?([^`]+)`")
BORDER = re.compile(r"^(\s*)(=+)((?:\s+=+)+)\s*$")


def _public() -> set[str]:
    try:
        import ntkc
        return PUBLIC | {f"ntkc.{n}" for n in ntkc.__all__}
    except Exception:  # noqa: BLE001 — the reference still builds; roles become plain code
        return set(PUBLIC)


def roles(text: str, public: set[str]) -> str:
    """``:func:`ntkc.plan``` -> a cross-reference to ``ntkc.plan`` (or code when not public)."""
    def one(match: re.Match) -> str:
        target = match.group(1).strip()
        target = target.removesuffix("()")
        full = target if target.startswith("ntkc") else f"ntkc.{target}"
        return f"[`{target}`][{full}]" if full in public else f"`{target}`"
    return ROLE.sub(one, text)


def doctests(text: str) -> str:
    """Fence each run of ``>>>`` lines, with their continuation and output lines, as pycon."""
    lines, out, i = text.split("\n"), [], 0
    fenced = False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                block.append(lines[i][len(indent):])
                i += 1
            out += [indent + "```pycon", *(indent + b for b in block), indent + "```"]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def tables(text: str) -> str:
    """reST simple tables (border, header, border, rows, border) -> Markdown tables."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        m = BORDER.match(lines[i])
        if m and i + 2 < len(lines) and BORDER.match(lines[i + 2]):
            indent, border = m.group(1), lines[i]
            spans, pos = [], len(indent)
            for cell in re.finditer(r"=+", border):
                spans.append((cell.start(), cell.end()))
            end = i + 3
            while end < len(lines) and not BORDER.match(lines[end]):
                end += 1
            if end == len(lines):
                out.append(lines[i]); i += 1; continue

            def cells(row: str) -> list[str]:
                bounds = [s for s, _ in spans] + [None]
                return [row[bounds[k]:bounds[k + 1]].strip() for k in range(len(spans))]

            header = cells(lines[i + 1])
            body = [cells(r) for r in lines[i + 3:end] if r.strip()]
            out.append(indent + "| " + " | ".join(header) + " |")
            out.append(indent + "|" + "---|" * len(header))
            out += [indent + "| " + " | ".join(r) + " |" for r in body]
            i = end + 1
            del pos
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


class NtkcDocstrings(griffe.Extension):
    """Rewrite each docstring once, as its object is loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.public = _public()

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # noqa: ARG002
        if obj.docstring is not None:
            obj.docstring.value = doctests(tables(roles(obj.docstring.value, self.public)))
