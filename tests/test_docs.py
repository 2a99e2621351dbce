"""The documentation's promises: every public name has a docstring with an example (``>>>``)
and a place in the API reference; examples written as attribute docstrings (which pytest's
doctest collection does not see) run; no page links outside the repository. The site itself is
built in strict mode by CI (``mkdocs build --strict``)."""

from __future__ import annotations

import ast
import doctest
import inspect
import pathlib
import re

import pytest

import ntkc
import ntkc.adapters
import ntkc.predict

ROOT = pathlib.Path(__file__).resolve().parent.parent
PUBLIC = ([f"ntkc.{n}" for n in ntkc.__all__] + [f"ntkc.predict.{n}" for n in ntkc.predict.__all__]
          + [f"ntkc.adapters.{n}" for n in ntkc.adapters.__all__])


def attribute_docstrings() -> dict[str, tuple[str, str]]:
    """``{name: (docstring, module file)}`` of module-level assignments in ntkc followed by a
    string (the attribute docstrings MkDocs renders)."""
    found = {}
    for path in sorted((ROOT / "ntkc").rglob("*.py")):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        for node, after in zip(body, body[1:]):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                for target in targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = (inspect.cleandoc(after.value.value), str(path))
    return found


ATTRIBUTES = attribute_docstrings()


def docstring(qualified: str) -> str:
    module, _, name = qualified.rpartition(".")
    obj = getattr({"ntkc": ntkc, "ntkc.predict": ntkc.predict, "ntkc.adapters": ntkc.adapters}[module], name)
    if inspect.isclass(obj):
        return vars(obj).get("__doc__") or ""          # its own, not a base class's
    if inspect.isfunction(obj) or inspect.ismodule(obj):
        return obj.__doc__ or ""
    return ATTRIBUTES.get(name, ("", ""))[0]           # data: the string after its assignment


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_a_docstring_with_an_example(name):
    text = docstring(name)
    assert text.strip(), f"{name} has no docstring of its own"
    assert ">>>" in text, f"{name}'s docstring has no example (a `>>>` line)"


@pytest.mark.parametrize("name", sorted(n for n in PUBLIC if n.rpartition(".")[2] in ATTRIBUTES))
def test_attribute_docstring_examples_run(name):
    text, path = ATTRIBUTES[name.rpartition(".")[2]]
    test = doctest.DocTestParser().get_doctest(text, {}, name, path, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries > 0, f"{name}'s example failed (output above)"


def test_every_public_name_is_in_the_api_reference():
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "api").glob("*.md"))
    documented = set(re.findall(r"^::: (\S+)", pages, flags=re.M))
    missing = [n for n in PUBLIC if n not in documented]
    assert not missing, f"not in docs/api/*.md: {missing}"


def test_no_page_links_outside_the_repository():
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))  # code is not a link
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+://", target) or target.startswith("#"):
                continue
            resolved = (page.parent / target.split("#")[0]).resolve()
            assert ROOT in resolved.parents or resolved == ROOT, f"{page.name} links outside the repository: {target}"
            assert resolved.exists(), f"{page.name} links to a missing file: {target}"
        assert "DESIGN.md" not in text, f"{page.name} mentions DESIGN.md, which is not in the repository"


def test_site_configuration_builds_offline():
    """mkdocs.yml: strict, the theme fetches no fonts, and no external inventories are imported."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^strict: true$", config, flags=re.M)
    assert re.search(r"^  font: false", config, flags=re.M)
    assert "import:" not in config and "inventories" not in config
    nav = set(re.findall(r"([\w/]+\.md)$", config, flags=re.M))
    assert all((ROOT / "docs" / page).is_file() for page in nav), "a page in the nav is missing"


@pytest.mark.parametrize("page", ["index.md", "getting_started.md", "compile_export.md"])
def test_guide_code_runs(page, tmp_path, monkeypatch, capsys):
    """The Python blocks of a guide run in order, in one namespace, as a reader would paste them."""
    monkeypatch.chdir(tmp_path)                      # a block may write files (an exported module)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / page).read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    namespace: dict = {}
    for i, block in enumerate(b for b in blocks if not b[:1].isspace()):  # not an excerpt of a module
        exec(compile(block, f"docs/{page} block {i}", "exec"), namespace)  # noqa: S102
