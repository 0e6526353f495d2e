"""YAML reading that keeps each value's line and resolves ``${VAR}`` from the environment.

pydantic reports errors by path (``journeys.0.steps.2.timeout``); ops need a
line number. So the tree is composed by hand and every path remembers where
it came from. Environment values are substituted here, once. ``${NAME}`` is a
parameter, shown as it is (a base URL masked in every error helps nobody);
``${secret:NAME}`` is a secret, remembered so that it is masked wherever it
would be shown. A parameter whose name says it is a secret (PASSWORD, TOKEN,
...) is masked all the same, and ``parcours check`` asks to declare it.

Config files are input like any other, and may be hostile: nesting is
checked on the event stream before anything is composed (libyaml's composer
recurses in C and would crash the process on a deep file), alias expansion
is bounded (a billion-laughs file stops at ``MAX_VALUES``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

Path = tuple[str | int, ...]

_VAR = re.compile(r"\$\$|\$\{(secret:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Names that only a secret would have: masked even when not declared ${secret:...}.
SECRET_LOOKING = re.compile(r"PASS|SECRET|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|AUTH", re.IGNORECASE)
# What YAML 1.1 reads as a boolean: as a key (``on:`` for press), it is never what was meant.
_YAML11_BOOLEANS = frozenset(
    w
    for word in ("y", "yes", "n", "no", "on", "off", "true", "false")
    for w in (word, word.title(), word.upper())
)
Missing = Literal["error", "warn"]
UNSET_VARIABLE = "is not set"  # in the problem's message; agents look for it
MAX_DEPTH = 64  # a journey needs about 8 levels
MAX_VALUES = 400_000  # values after alias expansion; 2,000 journeys are about 80,000
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refused(Exception):
    """A file whose shape is refused before or while it is built: too deep or too large."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.problem = SourceProblem(line, message)


@dataclass(frozen=True)
class SourceProblem:
    """A problem found while reading, before any schema check."""

    line: int
    message: str
    path: Path = ()


@dataclass
class YamlDocument:
    """A parsed file: plain data, the line of every path, and the secrets it pulled in."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    problems: list[SourceProblem] = field(default_factory=list)
    # Valid but doubtful: a variable missing where that is allowed, an undeclared secret.
    warnings: list[SourceProblem] = field(default_factory=list)

    def line_of(self, path: Path) -> int:
        """Line of the nearest enclosing value that has one (missing keys point at their parent)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


def read_yaml(
    text: str,
    env: Mapping[str, str],
    variables: Mapping[str, str],
    missing: Missing = "error",
) -> YamlDocument:
    """Parse one YAML document; syntax errors and hostile shapes become problems.

    ``missing="warn"`` is for validating configs where their secrets are not (a CI job):
    an unset variable is a warning and stays in the text as written."""
    try:
        _check_depth(text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return YamlDocument(None, problems=[SourceProblem(line, f"invalid YAML: {exc.problem}")])
    except yaml.YAMLError as exc:
        return YamlDocument(None, problems=[SourceProblem(1, f"invalid YAML: {exc}")])
    except _Refused as exc:
        return YamlDocument(None, problems=[exc.problem])
    doc = YamlDocument(None)
    if node is not None:
        try:
            doc.data = _Builder(loader, doc, env, variables, missing).build(node, ())
        except _Refused as exc:
            return YamlDocument(None, problems=[exc.problem])
    return doc


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, which libyaml builds without recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 1
                raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _Builder:
    """Turns composed YAML nodes into plain data, recording lines and secrets."""

    def __init__(
        self,
        loader: yaml.SafeLoader,
        doc: YamlDocument,
        env: Mapping[str, str],
        variables: Mapping[str, str],
        missing: Missing,
    ) -> None:
        self._loader = loader
        self._missing = missing
        self._doc = doc
        self._env = env
        self._variables = variables
        self._values = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self._values += 1
        line = node.start_mark.line + 1
        if len(path) > MAX_DEPTH:
            raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels (an alias inside itself?)")
        if self._values > MAX_VALUES:
            raise _Refused(
                line,
                f"more than {MAX_VALUES:,} values once aliases are expanded "
                "(aliases of aliases, a 'billion laughs'?)",
            )
        self._doc.lines[path] = line
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self._loader.construct_object(node)
        if isinstance(value, str):
            return self._substitute(value, node.start_mark.line + 1, path)
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                self._doc.problems.append(SourceProblem(line, _key_problem(key_node, key)))
                continue
            if key in result:
                self._doc.problems.append(
                    SourceProblem(line, f"duplicate key '{key}'", (*path, key))
                )
                continue
            result[key] = self.build(value_node, (*path, key))
            self._doc.lines[(*path, key)] = line
        return result

    def _substitute(self, text: str, line: int, path: Path) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            declared, name, default = bool(match.group(1)), match.group(2), match.group(3)
            if name in self._variables:
                return self._variables[name]
            if name in self._env:
                value = self._env[name]
                if declared or SECRET_LOOKING.search(name):
                    self._doc.secrets.add(value)
                if not declared and SECRET_LOOKING.search(name):
                    self._doc.warnings.append(
                        SourceProblem(
                            line,
                            f"${{{name}}} looks like a secret and is masked; declare it as "
                            f"${{secret:{name}}} (plain ${{NAME}} parameters are shown)",
                            path,
                        )
                    )
                return value
            if default is not None:
                return default
            problem = SourceProblem(
                line,
                f"environment variable {name} {UNSET_VARIABLE} "
                f"(set it, or give a default: ${{{name}:-value}})",
                path,
            )
            if self._missing == "warn":
                self._doc.warnings.append(problem)
                return match.group(0)
            self._doc.problems.append(problem)
            return ""

        return _VAR.sub(replace, text)


def _key_problem(node: yaml.Node, key: object) -> str:
    """Why a key is refused; YAML 1.1 reads ``on:`` (press's target) as ``true:``."""
    written = node.value if isinstance(node, yaml.ScalarNode) else None
    if isinstance(written, str) and written in _YAML11_BOOLEANS:
        return f'YAML reads the key {written} as {key!r}; quote it as "{written}"'
    return f"keys must be text, got {key!r}"
