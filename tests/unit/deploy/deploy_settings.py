"""The environment variables the services read, computed from their settings classes.

Nothing here is a hand-kept list: every pydantic-settings class under libs/ and services/
is found by reading the source (a class whose bases include `BaseSettings`), imported, and
walked field by field. A field's variable is its `validation_alias` / `alias` when it has
one, else the class's `env_prefix` + the field name; a field whose type is itself a settings
class (e.g. `kafka: KafkaSettings`) is not a variable: that class reads its own.
"""

from __future__ import annotations

import ast
import importlib
import typing
from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices, AliasPath, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[3]
SOURCE_ROOTS = [ROOT / "libs" / "common", ROOT / "services"]


@dataclass(frozen=True)
class EnvVar:
    """One setting a service reads, under any of `names` (alias choices)."""

    names: tuple[str, ...]
    secret: bool
    owner: str  # module.Class, for error messages


def _settings_modules() -> list[str]:
    """Modules defining a class with `BaseSettings` among its bases (found without importing)."""
    modules: list[str] = []
    for root in SOURCE_ROOTS:
        for path in sorted(root.rglob("tidings/**/*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(
                    (isinstance(b, ast.Name) and b.id == "BaseSettings")
                    or (isinstance(b, ast.Attribute) and b.attr == "BaseSettings")
                    for b in node.bases
                ):
                    parts = path.relative_to(root).with_suffix("").parts
                    modules.append(".".join(parts[parts.index("tidings") :]))
                    break
    return modules


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of the services and the shared library."""
    found: dict[str, type[BaseSettings]] = {}
    for module_name in _settings_modules():
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value is not BaseSettings
                and value.__module__ == module_name
            ):
                found[f"{module_name}.{value.__qualname__}"] = value
    return list(found.values())


def _is_settings(annotation: object) -> bool:
    args = typing.get_args(annotation)
    candidates = args if args else (annotation,)
    return any(isinstance(c, type) and issubclass(c, BaseSettings) for c in candidates)


def _is_secret(annotation: object) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def _names(cls: type[BaseSettings], field_name: str, field: FieldInfo) -> tuple[str, ...]:
    """The variable names of a field (settings are case-insensitive: upper-cased, deduped)."""
    alias = field.validation_alias or field.alias
    if isinstance(alias, str):
        names = [alias]
    elif isinstance(alias, AliasChoices):
        names = [c if isinstance(c, str) else str(c.path[0]) for c in alias.choices]
    elif isinstance(alias, AliasPath):
        names = [str(alias.path[0])]
    else:
        names = [f"{cls.model_config.get('env_prefix', '')}{field_name}"]
    return tuple(dict.fromkeys(n.upper() for n in names))


def service_env_vars() -> dict[str, EnvVar]:
    """First variable name -> the setting, over every settings class."""
    result: dict[str, EnvVar] = {}
    for cls in settings_classes():
        for field_name, field in cls.model_fields.items():
            if _is_settings(field.annotation):
                continue
            names = _names(cls, field_name, field)
            result[names[0]] = EnvVar(
                names=names,
                secret=_is_secret(field.annotation),
                owner=f"{cls.__module__}.{cls.__qualname__}",
            )
    return result
