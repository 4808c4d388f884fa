"""``code_version`` of every asset: a hash of the code that computes it.

An asset's code is its own compute function plus every ``lensaudit`` science module the
function reaches: the modules of the globals it names, the modules it imports inside its
body, the profile definitions (``lensaudit.config``), the Spark job it runs (``spark.run(context, <job function>, ...)``,
or by wire name ``spark.run_job(context, "<job>", ...)`` -> ``lensaudit.spark_jobs.entrypoint.JOBS["<job>"]``), and, transitively, every ``lensaudit``
module those import (module-level or inside functions).  The closure is conservative: an
edit anywhere in it changes the version, so Dagster marks the asset's code as changed.
Edits to other assets, to gates (``lensaudit.gates``: checks, not data) or to comments in
*unrelated* modules do not.
"""

import ast
import hashlib
import importlib.util
import inspect
import textwrap
import types
from collections.abc import Callable, Iterable

import dagster as dg

PACKAGE = "lensaudit"
EXCLUDED = ("lensaudit.gates",)  # asset checks read the store; they do not shape the data
ALWAYS = ("lensaudit.config",)  # the profiles: every asset reads its parameters through the settings resource
VERSION_CHARS = 16


def _in_scope(mod: str) -> bool:
    return (mod == PACKAGE or mod.startswith(PACKAGE + ".")) and not any(
        mod == e or mod.startswith(e + ".") for e in EXCLUDED)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _imports_in(tree: ast.AST, package: str | None) -> set[str]:
    """Absolute names of the modules an AST imports (``from a import b`` also yields
    ``a.b`` when ``b`` is a submodule)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if not package:
                    continue
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if not mod:
                continue
            out.add(mod)
            for a in node.names:
                if _in_scope(f"{mod}.{a.name}") and _module_exists(f"{mod}.{a.name}"):
                    out.add(f"{mod}.{a.name}")
    return out


def _module_source(name: str) -> tuple[str, str | None]:
    """(source text, package) of a module, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"code_version: cannot read the source of module {name!r}")
    package = name if spec.submodule_search_locations else name.rpartition(".")[0]
    with open(spec.origin, encoding="utf-8") as f:
        return f.read(), package


def _referenced_modules(fn: Callable) -> set[str]:
    """Modules of the globals a function names (also in nested code) and of its local imports."""
    names: set[str] = set()

    def walk(code: types.CodeType) -> None:
        names.update(code.co_names)
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                walk(c)

    walk(fn.__code__)
    mods: set[str] = set()
    for n in names:
        if n not in fn.__globals__:
            continue
        obj = fn.__globals__[n]
        mod = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
        if isinstance(mod, str):
            mods.add(mod)
    mods |= _imports_in(ast.parse(textwrap.dedent(inspect.getsource(fn))), fn.__module__.rpartition(".")[0] or None)
    return mods


def _spark_jobs(fn: Callable) -> list[Callable]:
    """The Spark job functions an asset runs: ``<resource>.run(context, <job function>, ...)``
    (the job named by its function, ``lensaudit.spark_jobs.entrypoint.JOBS``' values) or, by
    wire name, ``<resource>.run_job(context, "<job>", ...)``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    names: list[str] = []
    functions: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and len(node.args) >= 2):
            continue
        arg = node.args[1]
        if node.func.attr == "run_job" and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            names.append(arg.value)
        elif node.func.attr == "run" and isinstance(arg, (ast.Name, ast.Attribute)):
            functions.append(arg.id if isinstance(arg, ast.Name) else arg.attr)
    if not names and not functions:
        return []
    from lensaudit.spark_jobs.entrypoint import JOBS

    by_function = {f.__name__: f for f in JOBS.values()}
    unknown = [n for n in names if n not in JOBS] + [f for f in functions if f not in by_function]
    if unknown:
        raise ValueError(f"code_version: {fn.__qualname__} runs unknown Spark job(s) {unknown}")
    return [JOBS[n] for n in names] + [by_function[f] for f in functions]


def code_closure(fn: Callable, read: Callable[[str], tuple[str, str | None]] = _module_source) -> dict[str, str]:
    """``{name: source}`` of the function(s) and every in-scope module the asset's code reaches."""
    roots = [fn, *_spark_jobs(fn)]
    sources = {f"fn:{r.__module__}.{r.__qualname__}": textwrap.dedent(inspect.getsource(r)) for r in roots}
    todo = sorted({m for r in roots for m in _referenced_modules(r) if _in_scope(m)} | set(ALWAYS))
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        text, package = read(mod)
        sources[f"mod:{mod}"] = text
        todo.extend(sorted(m for m in _imports_in(ast.parse(text), package) if _in_scope(m) and m not in seen))
    return sources


def code_version(fn: Callable, read: Callable[[str], tuple[str, str | None]] = _module_source) -> str:
    """A short sha256 over :func:`code_closure` (names and texts, sorted by name)."""
    h = hashlib.sha256()
    for name, text in sorted(code_closure(fn, read).items()):
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:VERSION_CHARS]


def compute_fn(asset: dg.AssetsDefinition) -> Callable:
    """The user function behind an ``@dg.asset``."""
    fn = asset.op.compute_fn
    return getattr(fn, "decorated_fn", fn)


def with_code_versions(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets with ``code_version`` set from their code (an explicit one is kept)."""
    out = []
    for a in assets:
        version = code_version(compute_fn(a))
        out.append(a.map_asset_specs(lambda s, v=version: s if s.code_version else s.replace_attributes(code_version=v)))
    return out
