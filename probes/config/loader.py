"""Load and validate probe configs as a whole; every problem, each with file:line."""

from __future__ import annotations

import contextlib
import difflib
import gc
import os
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from probes.conditions import NETWORKS, Network
from probes.config.document import ConfigFile
from probes.config.durations import format_duration
from probes.config.model import (
    DEFAULT_TIMEOUT_SECONDS,
    Defaults,
    DeviceProfile,
    Journey,
    JourneyBudgets,
    JsErrorPolicy,
    merged_budgets,
)
from probes.config.spec import JourneySpec
from probes.config.yaml_source import Missing, Path, YamlDocument, read_yaml
from probes.devices import BUILTIN_PROFILES, known_device_names
from probes.kinds import KINDS, NO_DEVICE
from probes.secrets import Masker

YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 4 * 1024 * 1024  # about 10,000 journeys; split larger configs into files


@dataclass(frozen=True)
class Problem:
    """One config mistake, located precisely enough to fix without searching."""

    file: str
    line: int
    message: str
    journey: str | None = None
    where: str = ""

    def __str__(self) -> str:
        context = [f'journey "{self.journey}"'] if self.journey else []
        if self.where:
            context.append(self.where)
        prefix = f"{', '.join(context)}: " if context else ""
        return f"{self.file}:{self.line}: {prefix}{self.message}"


class ConfigError(Exception):
    """Raised with every problem found; never a traceback for bad input."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.file, p.line)))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LoadedConfig:
    """A valid configuration: the journeys to run and the secrets to mask."""

    journeys: tuple[JourneySpec, ...]
    masker: Masker
    files: tuple[str, ...]
    warnings: tuple[Problem, ...] = ()


def config_files(paths: Iterable[str | os.PathLike[str]]) -> list[FsPath]:
    """Expand directories to their YAML files, sorted, so that load order is stable."""
    files: list[FsPath] = []
    for raw in paths:
        path = FsPath(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES))
        else:
            files.append(path)
    return files


def load_config(
    paths: Iterable[str | os.PathLike[str]],
    env: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    missing: Missing = "error",
) -> LoadedConfig:
    """Read every file, validate the whole, and raise ConfigError listing all problems.

    ``missing="warn"``: unset variables are warnings (validating where secrets are not)."""
    sources, problems = read_config_sources(paths)
    return _load(
        sources, env if env is not None else os.environ, variables or {}, problems, missing
    )


def read_config_sources(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[list[tuple[str, str]], list[Problem]]:
    """(name, text) of every config file, and what could not be read.

    The collector sends these texts, unresolved, with each job of the split deployment."""
    paths = list(paths)
    sources: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for path in config_files(paths):
        try:
            sources.append((str(path), _read_bounded(path)))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), 1, f"cannot read file: {exc}"))
        except ValueError as exc:
            problems.append(Problem(str(path), 1, str(exc)))
    if not sources and not problems:
        problems.append(Problem(", ".join(map(str, paths)) or ".", 1, "no YAML config found"))
    return sources, problems


def load_config_sources(
    sources: Iterable[tuple[str, str]],
    env: Mapping[str, str] | None = None,
    missing: Missing = "error",
) -> LoadedConfig:
    """Validate config files given as (name, text): an agent loading a job's config."""
    return _load(list(sources), env if env is not None else os.environ, {}, [], missing)


def _read_bounded(path: FsPath) -> str:
    """The file's text, refusing one over MAX_FILE_BYTES before reading it."""
    with path.open("rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(
            f"file is over {MAX_FILE_BYTES // (1024 * 1024)} MiB; split it into several files"
        )
    return data.decode("utf-8")


def load_config_text(
    text: str,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Validate config given as text (the embedded demo, tests)."""
    return _load([(source, text)], env if env is not None else os.environ, variables or {}, [])


@dataclass
class _Profiles:
    """Custom device and network profiles, shared by every file of a config."""

    devices: dict[str, DeviceProfile] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    device_names: set[str] = field(default_factory=set)
    network_names: set[str] = field(default_factory=set)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a config is loaded.

    Loading makes hundreds of thousands of objects that all stay alive; each collection
    walks them all, which made loading quadratic (4,000 journeys: 4.0 s with the
    collector running, 2.2 s without). Input is bounded, so the pause is too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load(
    sources: list[tuple[str, str]],
    env: Mapping[str, str],
    variables: Mapping[str, str],
    problems: list[Problem],
    missing: Missing = "error",
) -> LoadedConfig:
    with _collector_paused():
        return _load_all(sources, env, variables, problems, missing)


def _load_all(
    sources: list[tuple[str, str]],
    env: Mapping[str, str],
    variables: Mapping[str, str],
    problems: list[Problem],
    missing: Missing,
) -> LoadedConfig:
    docs = [(name, read_yaml(text, env, variables, missing)) for name, text in sources]
    warnings = [
        Problem(name, w.line, w.message, _journey_name(doc.data, w.path), _format_loc(w.path))
        for name, doc in docs
        for w in doc.warnings
    ]
    secrets: set[str] = set().union(*(doc.secrets for _, doc in docs))
    profiles = _Profiles()
    problems.extend(_profile_names(docs, profiles))
    first_seen: dict[str, str] = {}
    parsed_files: list[tuple[str, YamlDocument, ConfigFile]] = []
    for name, doc in docs:
        masker = Masker(doc.secrets)
        problems.extend(
            Problem(
                name,
                p.line,
                masker.mask(p.message),
                _journey_name(doc.data, p.path),
                _format_loc(p.path),
            )
            for p in doc.problems
        )
        if doc.data is None and not doc.problems:
            problems.append(Problem(name, 1, "the file is empty; expected a 'journeys' list"))
            continue
        problems.extend(_cross_checks(name, doc, first_seen, profiles))
        parsed = _validate(name, doc, masker, problems) if doc.data is not None else None
        if parsed is not None and not doc.problems:
            parsed_files.append((name, doc, parsed))
            profiles.devices.update(parsed.device_profiles)
            profiles.networks.update(
                (key, Network(key, n.latency * 1000, n.download_kbps, n.upload_kbps))
                for key, n in parsed.network_profiles.items()
            )
    journeys = []
    for name, doc, parsed in parsed_files:
        for index, journey in enumerate(parsed.journeys):
            where = f"{name}:{doc.line_of(('journeys', index, 'name'))}"
            spec = _resolve(parsed, journey, where, profiles)
            problem = _timeout_problem(name, doc, index, parsed.defaults, journey, spec)
            if problem is None:
                journeys.append(spec)
            else:
                problems.append(problem)
    if not journeys and not problems:
        problems.append(
            Problem(
                ", ".join(n for n, _ in sources) or ".",
                1,
                "no journeys defined; expected a 'journeys' list in some file",
            )
        )
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(
        tuple(journeys),
        Masker(secrets),
        tuple(name for name, _ in sources),
        tuple(warnings),
    )


def _profile_names(docs: list[tuple[str, YamlDocument]], profiles: _Profiles) -> list[Problem]:
    """Collect custom profile names first, so that every file may use any of them."""
    problems = []
    where: dict[tuple[str, str], str] = {}
    for name, doc in docs:
        data = doc.data if isinstance(doc.data, dict) else {}
        for section, names, builtin in (
            ("device_profiles", profiles.device_names, set(BUILTIN_PROFILES)),
            ("network_profiles", profiles.network_names, set(NETWORKS)),
        ):
            entries = data.get(section)
            for key in entries if isinstance(entries, dict) else {}:
                line = doc.line_of((section, key))
                if key in builtin:
                    problems.append(
                        Problem(
                            name,
                            line,
                            f"'{key}' is a built-in profile; choose another name",
                            where=f"{section}.{key}",
                        )
                    )
                elif (section, key) in where:
                    problems.append(
                        Problem(
                            name,
                            line,
                            f"profile '{key}' is already defined at {where[(section, key)]}",
                            where=f"{section}.{key}",
                        )
                    )
                else:
                    where[(section, key)] = f"{name}:{line}"
                    names.add(key)
    return problems


def _validate(
    name: str, doc: YamlDocument, masker: Masker, problems: list[Problem]
) -> ConfigFile | None:
    if not isinstance(doc.data, dict):
        if not doc.problems:
            problems.append(
                Problem(name, 1, "expected a mapping with a 'journeys' list at the top")
            )
        return None
    try:
        return ConfigFile.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors():
            tagged = tuple(error["loc"])
            loc = _untagged(tagged)
            problems.append(
                Problem(
                    name,
                    doc.line_of(loc),
                    masker.mask(_message(error, tagged)),
                    _journey_name(doc.data, loc),
                    _format_loc(loc),
                )
            )
        return None


def _untagged(loc: Path) -> Path:
    """pydantic puts the kind's tag in the path of a check (journeys.0.http.steps); the
    YAML has no such level."""
    if len(loc) > 2 and loc[0] == "journeys" and loc[2] in KINDS:
        return (*loc[:2], *loc[3:])
    return loc


def _resolve(
    parsed: ConfigFile, journey: BaseModel, where: str, profiles: _Profiles
) -> JourneySpec:
    if not isinstance(journey, Journey):
        return _resolve_check(parsed.defaults, journey, where)
    defaults = parsed.defaults
    devices = _pick(journey.devices, defaults.devices)
    used_devices = {d: profiles.devices[d] for d in devices if d in profiles.devices}
    policy = _js_policy(
        _pick(journey.js_errors, defaults.js_errors),
        _pick(journey.fail_on_js_error, defaults.fail_on_js_error),
    )
    used_networks = {_pick(journey.network, defaults.network)} | {
        p.network for p in used_devices.values()
    }

    return JourneySpec(
        name=journey.name,
        kind=journey.kind,
        base_url=_pick(journey.base_url, defaults.base_url),
        interval=_pick(journey.interval, defaults.interval),
        timeout=_pick(journey.timeout, _pick(defaults.timeout, DEFAULT_TIMEOUT_SECONDS)),
        step_timeout=_pick(journey.step_timeout, defaults.step_timeout),
        devices=tuple(devices),
        locations=_locations(journey.locations, defaults.locations),
        retries=_pick(journey.retries, defaults.retries),
        fail_on_js_error=policy.own == "fail",
        js_errors=policy,
        alert_min_locations=(journey.alerting or defaults.alerting).threshold,
        budgets=merged_budgets(defaults.budgets, journey.budgets),
        steps=tuple(journey.steps),
        cleanup=tuple(journey.cleanup),
        source=where,
        network=_pick(journey.network, defaults.network),
        cpu_slowdown=_pick(journey.cpu_slowdown, defaults.cpu_slowdown),
        device_profiles=used_devices,
        evidence=journey.evidence or defaults.evidence,
        network_profiles={k: v for k, v in profiles.networks.items() if k in used_networks},
    )


def _js_policy(policy: JsErrorPolicy | None, fail_on_js_error: bool | None) -> JsErrorPolicy:
    """``js_errors`` as set, else the older ``fail_on_js_error`` shorthand, else defaults."""
    if policy is not None:
        return policy
    if fail_on_js_error is None:
        return JsErrorPolicy()
    return JsErrorPolicy(own="fail" if fail_on_js_error else "record")


def _locations(own: list[str] | None, default: list[str] | None) -> tuple[str, ...] | None:
    chosen = _pick(own, default)
    return None if chosen is None else tuple(dict.fromkeys(chosen))


def _pick(own: Any, default: Any) -> Any:
    """A setting of the check if it has one, else the file's default."""
    return default if own is None else own


def _resolve_check(defaults: Defaults, check: Any, where: str) -> JourneySpec:
    """A check that is not a browser journey: it runs once per location, on no device."""
    return JourneySpec(
        name=check.name,
        kind=check.kind,
        base_url=getattr(check, "base_url", None) or defaults.base_url,
        interval=_pick(check.interval, defaults.interval),
        timeout=_pick(check.timeout, _pick(defaults.timeout, DEFAULT_TIMEOUT_SECONDS)),
        step_timeout=defaults.step_timeout,
        devices=(NO_DEVICE,),
        locations=_locations(check.locations, defaults.locations),
        retries=_pick(check.retries, defaults.retries),
        fail_on_js_error=False,
        alert_min_locations=(check.alerting or defaults.alerting).threshold,
        budgets=JourneyBudgets(),
        steps=(),
        source=where,
        settings=check,
    )


def _timeout_problem(  # noqa: PLR0917 - the place (file, doc, index) and the three layers
    name: str, doc: YamlDocument, index: int, defaults: Defaults, journey: Any, spec: JourneySpec
) -> Problem | None:
    """A run's deadline set below its interval, so that runs never pile up behind each other."""
    if journey.timeout is None and defaults.timeout is None:
        return None  # the 60 s default: a longer run skips the next one, and it is counted
    if spec.timeout < spec.interval:
        return None
    path = (
        ("journeys", index, "timeout") if journey.timeout is not None else ("defaults", "timeout")
    )
    return Problem(
        name,
        doc.line_of(path),
        f"timeout ({format_duration(spec.timeout)}) must be shorter than the interval "
        f"({format_duration(spec.interval)}): a run must end before the next one is due",
        journey.name,
        _format_loc(path),
    )


def _cross_checks(
    name: str, doc: YamlDocument, first_seen: dict[str, str], profiles: _Profiles
) -> list[Problem]:
    """Checks across fields, run on the raw data so they report alongside schema errors."""
    data = doc.data if isinstance(doc.data, dict) else {}
    problems = _unknown_networks(name, doc, data, profiles)
    journeys = data.get("journeys")
    if not isinstance(journeys, list):
        return problems
    for index, journey in enumerate(journeys):
        if not isinstance(journey, dict):
            continue
        title = journey.get("name") if isinstance(journey.get("name"), str) else None
        if title is not None:
            line = doc.line_of(("journeys", index, "name"))
            if title in first_seen:
                problems.append(
                    Problem(
                        name, line, f"journey name is already used at {first_seen[title]}", title
                    )
                )
            else:
                first_seen[title] = f"{name}:{line}"
        problems.extend(_duplicate_steps(name, doc, index, title, journey.get("steps")))
        problems.extend(
            _unknown_devices(name, doc, index, title, journey.get("devices"), profiles=profiles)
        )
        for section in ("steps", "cleanup"):
            steps = journey.get(section)
            for position, step in enumerate(steps if isinstance(steps, list) else []):
                if isinstance(step, dict):
                    problems.extend(
                        _unknown_devices(
                            name,
                            doc,
                            index,
                            title,
                            step.get("devices"),
                            profiles=profiles,
                            within=(section, position),
                        )
                    )
    return problems


def _unknown_networks(
    name: str, doc: YamlDocument, data: dict[str, Any], profiles: _Profiles
) -> list[Problem]:
    """Every ``network:`` (defaults, journeys, device profiles) must name a known profile."""
    known = sorted({*NETWORKS, *profiles.network_names})
    places: list[tuple[Path, object, str | None]] = []
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        places.append((("defaults", "network"), defaults.get("network"), None))
    for index, journey in enumerate(data.get("journeys") or []):
        if isinstance(journey, dict):
            title = journey.get("name") if isinstance(journey.get("name"), str) else None
            places.append((("journeys", index, "network"), journey.get("network"), title))
    devices = data.get("device_profiles")
    for key, device in devices.items() if isinstance(devices, dict) else []:
        if isinstance(device, dict):
            places.append((("device_profiles", key, "network"), device.get("network"), None))
    problems = []
    for path, value, journey in places:
        if isinstance(value, str) and value not in known:
            hint = difflib.get_close_matches(value, known, n=1)
            problems.append(
                Problem(
                    name,
                    doc.line_of(path),
                    f"unknown network '{value}'"
                    + (f"; did you mean '{hint[0]}'?" if hint else "")
                    + f" (expected one of {', '.join(known)}, or a network_profiles entry)",
                    journey,
                    _format_loc(path),
                )
            )
    return problems


def _duplicate_steps(
    name: str, doc: YamlDocument, index: int, journey: str | None, steps: object
) -> list[Problem]:
    if not isinstance(steps, list):
        return []
    seen: set[str] = set()
    problems = []
    for position, step in enumerate(steps):
        title = step.get("name") if isinstance(step, dict) else None
        if isinstance(title, str) and title in seen:
            path = ("journeys", index, "steps", position, "name")
            problems.append(
                Problem(
                    name,
                    doc.line_of(path),
                    f"two steps are named '{title}'; step names must be unique",
                    journey,
                    _format_loc(path),
                )
            )
        if isinstance(title, str):
            seen.add(title)
    return problems


def _unknown_devices(
    name: str,
    doc: YamlDocument,
    index: int,
    journey: str | None,
    devices: object,
    *,
    profiles: _Profiles,
    within: Path = (),
) -> list[Problem]:
    if not isinstance(devices, list):
        return []
    known = [*known_device_names(), *sorted(profiles.device_names)]
    problems = []
    for position, device in enumerate(devices):
        if not isinstance(device, str) or device in known:
            continue
        hint = difflib.get_close_matches(device, known, n=1)
        path = ("journeys", index, *within, "devices", position)
        problems.append(
            Problem(
                name,
                doc.line_of(path),
                f"unknown device '{device}'"
                + (f"; did you mean '{hint[0]}'?" if hint else "")
                + " (expected desktop, mobile, a Playwright device name such as 'iPhone 13', "
                "or a device_profiles entry)",
                journey,
                _format_loc(path),
            )
        )
    return problems


def _journey_name(data: Any, loc: Path) -> str | None:
    if len(loc) >= 2 and loc[0] == "journeys" and isinstance(loc[1], int):
        try:
            name = data["journeys"][loc[1]].get("name")
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
        return name if isinstance(name, str) else None
    return None


def _format_loc(loc: Path) -> str:
    """``journeys.0.steps.2.timeout`` as ``steps[2].timeout`` (the journey is named separately)."""
    parts = loc[2:] if len(loc) >= 2 and loc[0] == "journeys" else loc
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: Mapping[str, Any], loc: Path) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        got = error.get("ctx", {}).get("tag", "?")
        return f"unknown kind {got}; expected one of {', '.join(KINDS)}"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        hint = difflib.get_close_matches(key, allowed, n=1)
        suggestion = f"did you mean '{hint[0]}'? " if hint else ""
        return f"unknown key '{key}'; {suggestion}expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return message
    if kind == "too_short" and error.get("input") == []:
        return "must not be empty: expected at least one entry"
    return f"{message[0].lower()}{message[1:]}, got {error.get('input')!r:.80}"


def _allowed_keys(loc: Path) -> list[str]:
    """Keys accepted at a path, found by walking the models' field annotations."""
    model: type[BaseModel] | None = ConfigFile
    for position, part in enumerate(loc):
        if model is None:
            return []
        if isinstance(part, int):
            continue
        if position == 2 and loc[0] == "journeys" and part in KINDS:
            model = KINDS[part].settings
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field else None
    return [field.alias or name for name, field in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
