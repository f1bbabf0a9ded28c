"""The routes of the URL configuration and the values that fill their kwargs."""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import re
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern

from tests.isolation.rules import APPS, INPUTS, KIND_OF_SEGMENT, SKIPPED, SLUGLIKE
from tests.isolation.world import Value, World

# --- the routes ---------------------------------------------------------------------------


@dataclass
class Route:
    name: str  # namespaced ("compute:console"), or the pattern when unnamed
    template: str  # "/dc/{slug}/redemptions/{pk}/", kwargs in braces
    kwargs: list[str]
    callback: Callable
    view: Callable  # the function behind the decorators (or the APIView class)

    @property
    def is_api(self) -> bool:
        return self.template.startswith("/api/")


_ROUTE_KWARG = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def _regex_template(regex: str) -> str | None:
    """A path template from a `re_path` regex: named groups become {name}; escaped
    characters are unescaped. None when anything else regex-like is left."""
    text = regex.removeprefix("^").removesuffix("$").removesuffix(r"\Z")
    out, i = [], 0
    while i < len(text):
        if text.startswith("(?P<", i):
            name_end = text.index(">", i)
            name = text[i + 4 : name_end]
            depth, j, in_class = 1, name_end + 1, False
            while depth:
                char = text[j]
                if char == "\\":
                    j += 2
                    continue
                if in_class:
                    in_class = char != "]"
                elif char == "[":
                    in_class = True
                elif char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
                j += 1
            out.append("{" + name + "}")
            i = j
        elif text[i] == "\\" and i + 1 < len(text) and not text[i + 1].isalnum():
            out.append(text[i + 1])
            i += 2
        elif text[i] in "()[]{}*+?|^$.\\":
            return None
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _template(pattern) -> str | None:
    if isinstance(pattern, RoutePattern):
        return _ROUTE_KWARG.sub(lambda m: "{" + m["name"] + "}", str(pattern))
    if isinstance(pattern, RegexPattern):
        return _regex_template(pattern.regex.pattern)
    return None


def _unwrapped(callback: Callable) -> Callable:
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    return view_class or inspect.unwrap(callback)


def _include_name(resolver: URLResolver) -> str:
    name = resolver.urlconf_name
    return name if isinstance(name, str) else getattr(name, "__name__", "")


def walk_routes(failures: list[str]) -> tuple[list[Route], dict[str, list[str]]]:
    """Every route of the URL configuration, and the ones skipped (by rule)."""
    routes: list[Route] = []
    skipped: dict[str, list[str]] = defaultdict(list)

    def rule_for(kind: str, key: str) -> str | None:
        for rule_kind, what, _why in SKIPPED:
            if rule_kind == kind and what == key:
                return f"{rule_kind} {what}"
        return None

    def walk(patterns: Iterable, prefix: str, namespaces: list[str]) -> None:
        for entry in patterns:
            piece = _template(entry.pattern)
            if isinstance(entry, URLResolver):
                shown = prefix + (piece if piece is not None else str(entry.pattern))
                rule = (entry.namespace and rule_for("namespace", entry.namespace)) or rule_for(
                    "include", _include_name(entry)
                )
                if rule:
                    skipped[rule].append(shown)
                    continue
                if piece is None:
                    failures.append(f"cannot turn the include {shown!r} into a path")
                    continue
                walk(
                    entry.url_patterns,
                    prefix + piece,
                    namespaces + ([entry.namespace] if entry.namespace else []),
                )
                continue
            assert isinstance(entry, URLPattern)
            name = ":".join([*namespaces, entry.name]) if entry.name else ""
            if piece is None:
                failures.append(f"cannot turn the route {prefix}{entry.pattern} into a path")
                continue
            template = prefix + piece
            rule = name and rule_for("name", name)
            if rule:
                skipped[rule].append(template)
                continue
            routes.append(
                Route(
                    name=name or template,
                    template=template,
                    kwargs=re.findall(r"\{(\w+)\}", template),
                    callback=entry.callback,
                    view=_unwrapped(entry.callback),
                )
            )

    walk(get_resolver().url_patterns, "/", [])
    for kind, what, _why in SKIPPED:
        if f"{kind} {what}" not in skipped:
            failures.append(f"skip rule {kind} {what!r} matches no route: remove it")
    return routes, skipped


# --- filling the kwargs -------------------------------------------------------------------


@functools.cache
def _tree(func: Callable) -> ast.AST | None:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):  # no source, or a file edited since import
        return None


def _strings(node: ast.AST, func: Callable, tree: ast.AST) -> set[str]:
    """The strings a comparison's other side stands for: a literal, a tuple/list/set of
    them, or a name bound to a dict (its keys) or a collection, locally or in the
    module."""
    if isinstance(node, ast.Constant):
        return {node.value} if isinstance(node.value, str) else set()
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_strings(e, func, tree) for e in node.elts))
    if isinstance(node, ast.Dict):
        return set().union(*(_strings(k, func, tree) for k in node.keys if k is not None))
    if isinstance(node, ast.Name):
        found: set[str] = set()
        for assign in ast.walk(tree):
            if isinstance(assign, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == node.id for t in assign.targets
            ):
                found |= _strings(assign.value, func, tree)
        value = getattr(func, "__globals__", {}).get(node.id)
        if isinstance(value, dict | tuple | list | set | frozenset):
            found |= {v for v in value if isinstance(v, str)}
        return found
    return set()


def _field_source(node: ast.AST, name: str) -> str | None:
    """Where `request.POST.get("step")` or `request.POST["step"]` reads from ("POST"), or
    the query string's equivalents ("GET"); None for anything else."""

    def source(value: ast.AST) -> str | None:
        if isinstance(value, ast.Attribute) and value.attr in INPUTS:
            return INPUTS[value.attr]
        return None

    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        first = node.args[0] if node.args else None
        if node.func.attr == "get" and isinstance(first, ast.Constant) and first.value == name:
            return source(node.func.value)
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and node.slice.value == name
    ):
        return source(node.value)
    return None


@functools.cache
def values_of(func: Callable, name: str, *, field: bool = False, depth: int = 0) -> set[str]:
    """The words a view tells apart in its variable `name` (a URL kwarg), or in the posted
    or queried field `name`: what the variable is compared with (`download == "csv"`,
    `action not in steps`), followed into the project functions it is passed to
    (`settlement_download(settlement, download)`)."""
    tree = _tree(func)
    if tree is None:
        return set()

    def is_var(node: ast.AST) -> bool:
        if isinstance(node, ast.Name) and node.id == name:
            return True
        # `step = request.GET.get("step")`: the local variable takes the field's name.
        return field and _field_source(node, name) is not None

    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(is_var(side) for side in sides):
                for side in sides:
                    if not is_var(side):
                        found |= _strings(side, func, tree)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and depth < 2:
            target = getattr(func, "__globals__", {}).get(node.func.id)
            if not (inspect.isfunction(target) and target.__module__.split(".")[0] in APPS):
                continue
            params = list(inspect.signature(target).parameters)
            passed = [(params[i], a) for i, a in enumerate(node.args) if i < len(params)]
            passed += [(k.arg, k.value) for k in node.keywords if k.arg]
            for param, arg in passed:
                if is_var(arg):
                    found |= values_of(target, param, depth=depth + 1)
    return {v for v in found if SLUGLIKE.fullmatch(v)}


@functools.cache
def field_sources(func: Callable, name: str) -> set[str]:
    """Where the view reads the field `name` from: "GET", "POST", both or neither."""
    tree = _tree(func)
    if tree is None:
        return set()
    return {_field_source(n, name) for n in ast.walk(tree)} - {None}


def candidates(route: Route, kwarg: str, world: World) -> list[Value] | None:
    """The values to try for one kwarg, by its name; None when the matrix has no filler."""
    segment = route.template.split("{" + kwarg + "}")[0].rstrip("/").split("/")[-1]
    if kwarg == "city_slug":
        return [Value(world.a_slug, False), Value(world.b_slug, True)]
    if kwarg == "slug":
        # After /dc/ a data center's (Y, or X as the operator's own scope), after
        # programs/ a program of city B; anywhere else, both.
        centers = [Value(world.y_slug, True), Value(world.x_slug, False)]
        programs = [Value(s, True) for s in world.program_slugs_b]
        return {"dc": centers, "programs": programs}.get(segment, programs + centers)
    if kwarg == "code":
        return [Value(c, True) for c in world.voucher_codes]
    if kwarg == "token":
        return [Value(t, True) for t in world.tokens]
    if kwarg == "record_id":
        return [Value(r, True) for r in world.record_ids]
    if kwarg in ("action", "download", "answer"):
        return [Value(v, None) for v in sorted(values_of(route.view, kwarg))] or None
    if kwarg == "pk" or kwarg.endswith("_id"):
        kind = KIND_OF_SEGMENT.get(segment)
        pks = world.ids[kind] if kind else sorted({pk for v in world.ids.values() for pk in v})
        return [Value(str(pk), True) for pk in pks]
    return None


@dataclass
class Fill:
    values: dict[str, Value]
    path: str

    @property
    def foreign(self) -> bool:
        return any(v.foreign for v in self.values.values())

    @property
    def all_foreign(self) -> bool:
        return all(v.foreign is not False for v in self.values.values())


def fills(route: Route, world: World, failures: list[str]) -> list[Fill]:
    options: dict[str, list[Value]] = {}
    for kwarg in route.kwargs:
        found = candidates(route, kwarg, world)
        if not found:
            failures.append(
                f"{route.name} ({route.template}): no filler for the URL kwarg {kwarg!r}; "
                "teach tests/isolation/routes.py what it names"
            )
            return []
        options[kwarg] = found
    result = []
    for combo in itertools.product(*options.values()):
        values = dict(zip(options, combo, strict=True))
        path = route.template
        for kwarg, value in values.items():
            path = path.replace("{" + kwarg + "}", value.text)
        try:
            match = resolve(path)
        except Resolver404:
            continue  # the value does not fit the converter (checked below per kwarg)
        if match.func is not route.callback:
            continue  # shadowed by an earlier route: that route gets its own turn
        result.append(Fill(values, path))
    if route.kwargs and not result:
        failures.append(f"{route.name} ({route.template}): no fill resolves back to it")
    return result
