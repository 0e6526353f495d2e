"""A whole config file: defaults, shared profiles, and checks of every registered kind."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag

from probes.config.model import Defaults, DeviceProfile, NetworkProfile, Strict
from probes.kinds import KINDS


def _kind_of(value: Any) -> str:
    """The tag that selects a check's model; journeys without ``kind:`` are browser ones."""
    kind = value.get("kind", "browser") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) else repr(kind)


# Built from the registry, so a new kind needs no edit here. mypy cannot see a type built
# at run time, hence Any for it; pydantic sees the real union.
_TAGGED: Any = Union[tuple(Annotated[k.settings, Tag(k.name)] for k in KINDS.values())]  # noqa: UP007
AnyCheck = Annotated[_TAGGED, Discriminator(_kind_of)]


class ConfigFile(Strict):
    """One YAML file: optional defaults and a list of checks (journeys) of any kind."""

    defaults: Defaults = Field(default_factory=Defaults)
    device_profiles: dict[str, DeviceProfile] = Field(default_factory=dict)
    network_profiles: dict[str, NetworkProfile] = Field(default_factory=dict)
    journeys: list[AnyCheck] = Field(default_factory=list)


def json_schema() -> dict[str, object]:
    """The JSON Schema of a config file, for editors (yaml-language-server and the like)."""
    schema = ConfigFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Parcours checks"
    return schema
