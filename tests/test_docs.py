"""The documentation stays true to the repository: README.md and every page under docs/.

* README.md is a front page: at most ``MAX_README_LINES`` lines; the content lives in docs/.
* Every relative link (``[text](path)``, ``![alt](path)``, ``[label]: path``) resolves to a
  file or folder inside the repository, and a ``#fragment`` on a Markdown target names one
  of its headings.  Only http(s) links may leave the repository (a link such as
  ``../shared/x.md`` works in one checkout and breaks in every clone).
* Every code reference written ``path/to/file.py:Symbol`` or ``path/to/file.py:Class.member``
  names an existing file (relative to the repository root) in which that symbol is
  defined: a module-level ``def``, ``class`` or assignment, or for ``Class.member`` a
  method, nested class, class attribute or ``self.member`` assignment (or registered
  buffer/parameter) of that class itself.  Imports do not count: a reference must point
  to the file that defines the name.
* Every page in docs/ can be reached from README.md by following links.

The checks read the files only (``ast``, no imports), so they run in milliseconds and
fail with the page, the line and the reference.  References in backticks without the
``file.py:`` prefix (e.g. a method that is being renamed) are prose and are not checked.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 220

# --------------------------------------------------------------------------- Markdown reading

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\n\s*\n).)+?\1", re.S)
_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # [text] or ![alt], one level of nested brackets
    r"\(\s*(<[^>]*>|[^()\s]+(?:\([^()\s]*\))?)"  # (target, which may hold one pair of parentheses
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"  # and an optional "title")
)
_REF_DEF = re.compile(r"^ {0,3}\[(?!\^)[^\]]+\]:\s*(\S+)", re.M)  # [label]: target, not a [^footnote]
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SYMBOL_REF = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-]+\.py):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def doc_pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@functools.lru_cache(maxsize=None)
def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def blank_fences(text: str) -> str:
    """``text`` with fenced code blocks blanked, offsets and line numbers unchanged."""
    out, fence = [], None
    for line in text.splitlines(keepends=True):
        m = _FENCE.match(line)
        blank = re.sub(r"[^\n]", " ", line)
        if fence is None and m:
            fence = m.group(1)
            out.append(blank)
        elif fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            out.append(blank)
        else:
            out.append(line)
    return "".join(out)


def mask_code(text: str) -> str:
    """``text`` with fenced code blanked and inline code masked, offsets and lines unchanged.

    Links are looked for in what remains: ``[x](y)`` inside code is not a link.
    """
    return _INLINE_CODE.sub(lambda m: re.sub(r"[^\n]", "x", m.group(0)), blank_fences(text))


def links_in(text: str) -> list[tuple[int, str]]:
    """(line, target) of every inline link, image and reference definition outside code."""
    masked = mask_code(text)
    found = [(m.start(1), m.group(1)) for m in _LINK.finditer(masked)]
    found += [(m.start(1), m.group(1)) for m in _REF_DEF.finditer(masked)]
    return sorted((line_of(masked, pos), target.strip("<>")) for pos, target in found)


@functools.lru_cache(maxsize=None)
def links(path: Path) -> list[tuple[int, str]]:
    return links_in(read(path))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    """The heading anchors of a Markdown page (duplicates numbered -1, -2, ... as GitHub does)."""
    seen: dict[str, int] = {}
    result = set()
    for line in blank_fences(read(path)).splitlines():
        m = _HEADING.match(line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}-{seen[slug]}"
        else:
            seen[slug] = 0
        result.add(slug)
    return frozenset(result)


def resolve_link(page: Path, target: str) -> tuple[Path | None, str | None]:
    """(resolved path or None, the problem or None) for one link target on ``page``."""
    if _SCHEME.match(target):
        if target.lower().startswith(("http://", "https://")):
            return None, None
        return None, "only http(s) links may leave the repository"
    path_part, _, fragment = target.partition("#")
    if not path_part:
        dest = page
    else:
        if path_part.startswith("/"):
            return None, "use a path relative to the page, not one starting with '/'"
        dest = (page.parent / unquote(path_part)).resolve()
        if not dest.is_relative_to(ROOT):
            return None, "points outside the repository (it breaks in every clone)"
        if not dest.exists():
            return None, f"{rel(dest)} does not exist"
    if fragment and dest.suffix == ".md" and dest.is_file() and unquote(fragment) not in anchors(dest):
        return None, f"{rel(dest)} has no heading with the anchor #{fragment}"
    return dest, None


# --------------------------------------------------------------------------- Python symbols


def _targets(node: ast.AST) -> list[str]:
    """Names bound by an assignment target (tuples unpacked)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [name for elt in node.elts for name in _targets(elt)]
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return []


def _body_definitions(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names defined directly in a module or class body (also inside if/try/with blocks)."""
    names: dict[str, ast.AST] = {}
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                names.update(dict.fromkeys(_targets(target), stmt))
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            names.update(dict.fromkeys(_targets(stmt.target), stmt))
        elif isinstance(stmt, ast.If):
            names.update(_body_definitions(stmt.body))
            names.update(_body_definitions(stmt.orelse))
        elif isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            for block in (stmt.body, stmt.orelse, stmt.finalbody, *[h.body for h in stmt.handlers]):
                names.update(_body_definitions(block))
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            names.update(_body_definitions(stmt.body))
    return names


def _instance_attributes(cls: ast.ClassDef) -> set[str]:
    """``self.x = ...`` (or ``self.x: T = ...``) and ``self.register_buffer("x", ...)`` in the methods of ``cls``."""
    names: set[str] = set()
    for method in cls.body:
        if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) or not method.args.args:
            continue
        me = method.args.args[0].arg
        for node in ast.walk(method):
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("register_buffer", "register_parameter", "register_module", "add_module")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == me
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
            for target in targets:
                for elt in ast.walk(target):
                    if isinstance(elt, ast.Attribute) and isinstance(elt.value, ast.Name) and elt.value.id == me:
                        names.add(elt.attr)
    return names


@functools.lru_cache(maxsize=None)
def parse(path: Path) -> ast.Module:
    return ast.parse(read(path), filename=str(path))


def symbol_problem(file: str, symbol: str) -> str | None:
    """Why ``file:symbol`` does not resolve, or None when it does."""
    path = (ROOT / file).resolve()
    if not path.is_relative_to(ROOT) or not path.is_file():
        return f"{file} does not exist (paths are relative to the repository root)"
    try:
        tree = parse(path)
    except SyntaxError as err:
        return f"{file} does not parse: {err}"
    return symbol_problem_in(tree, symbol, file)


def symbol_problem_in(tree: ast.Module, symbol: str, file: str) -> str | None:
    """Why ``symbol`` (``Name`` or ``Class.member``) is not defined in ``tree``, or None."""
    parts = symbol.split(".")
    scope: ast.AST = tree
    for i, part in enumerate(parts):
        defined = _body_definitions(scope.body)  # type: ignore[attr-defined]
        last = i == len(parts) - 1
        if part in defined:
            scope = defined[part]
        elif last and isinstance(scope, ast.ClassDef) and part in _instance_attributes(scope):
            return None
        else:
            where = f"at module level in {file}" if i == 0 else f"in class {'.'.join(parts[:i])} of {file}"
            imported = any(
                isinstance(node, (ast.Import, ast.ImportFrom))
                and any((alias.asname or alias.name).split(".")[0] == part for alias in node.names)
                for node in tree.body
            )
            hint = " (it is only imported there: point to the file that defines it)" if i == 0 and imported else ""
            if i > 0:
                hint = " (members inherited from a base class count only in the base class's file)"
            return f"{part!r} is not defined {where}{hint}"
        if not last and not isinstance(scope, ast.ClassDef):
            return f"{'.'.join(parts[: i + 1])} in {file} is not a class, so it has no member {parts[i + 1]!r}"
    return None


def symbol_refs(path: Path) -> list[tuple[int, str, str]]:
    """(line, file, symbol) of every ``file.py:Symbol`` reference on a page, code included."""
    text = read(path)
    return [(line_of(text, m.start()), m.group(1), m.group(2)) for m in _SYMBOL_REF.finditer(text)]


# --------------------------------------------------------------------------- the tests


def test_readme_is_a_front_page():
    count = len(read(README).splitlines())
    assert count <= MAX_README_LINES, (
        f"README.md has {count} lines, more than {MAX_README_LINES}: move the detail into a page under docs/ "
        "and link it from the README"
    )


def test_relative_links_resolve_inside_the_repository():
    problems = []
    for page in doc_pages():
        for line, target in links(page):
            _, problem = resolve_link(page, target)
            if problem:
                problems.append(f"{rel(page)}:{line}: link ({target}): {problem}")
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_code_references_name_defined_symbols():
    problems, count = [], 0
    for page in doc_pages():
        for line, file, symbol in symbol_refs(page):
            count += 1
            problem = symbol_problem(file, symbol)
            if problem:
                problems.append(f"{rel(page)}:{line}: `{file}:{symbol}`: {problem}")
    assert not problems, "stale code references:\n" + "\n".join(problems)
    assert count > 0, "no file.py:Symbol reference found at all: is the pattern still the one the docs use?"


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = {README}, [README]
    while todo:
        page = todo.pop()
        for _, target in links(page):
            dest, problem = resolve_link(page, target)
            if dest is not None and problem is None and dest.suffix == ".md" and dest.is_file() and dest not in reached:
                reached.add(dest)
                todo.append(dest)
    orphans = [rel(p) for p in doc_pages() if p not in reached]
    assert not orphans, (
        "pages no link leads to (link them from README.md or from a page that is linked): " + ", ".join(orphans)
    )


# --------------------------------------------------------------------------- the checker itself


def test_the_checker_finds_what_it_should():
    """The helpers themselves: links outside code only, anchors, symbols and the reference pattern."""
    text = "a [x](y.md) `[no](z.md)` b\n```python\n[no](w.md)\n```\n![i](f.png \"t\")\n[r]: ref.md\n"
    assert links_in(text) == [(1, "y.md"), (5, "f.png"), (6, "ref.md")]
    assert github_slug("What the step counters mean (GANs under `manual` optimisation)") == (
        "what-the-step-counters-mean-gans-under-manual-optimisation"
    )
    assert github_slug("The [d(ε)](x.md) trade-off") == "the-dε-trade-off"
    tree = ast.parse(
        "import os\nfrom a import b as c\nX = 1\nif X:\n    Y: int = 2\n"
        "class K:\n    z = 3\n    def __init__(self):\n        self.w = 4\n        self.register_buffer('k_t', 0)\n"
        "    def m(self):\n        pass\n    class Inner:\n        def n(self):\n            pass\n"
        "def f():\n    V = 5\n"
    )
    for good in ("X", "Y", "K", "K.z", "K.w", "K.k_t", "K.m", "K.Inner.n", "f"):
        assert symbol_problem_in(tree, good, "t.py") is None, good
    for bad in ("os", "c", "V", "K.v", "K.m.x", "f.x", "Missing"):
        assert symbol_problem_in(tree, bad, "t.py") is not None, bad
    assert "only imported" in symbol_problem_in(tree, "c", "t.py")
    assert symbol_problem("no/such_file.py", "x") is not None
    refs = _SYMBOL_REF.findall("`lightning_modules/de_gan.py:hidden_space_loss` and a/b.py:C.m, not x.py`:y` or u/x.py")
    assert refs == [("lightning_modules/de_gan.py", "hidden_space_loss"), ("a/b.py", "C.m")]
