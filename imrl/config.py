"""Workflow configuration: JSON-schema validation with messages that name the key and
list the valid values, defaults filled in, and a stable hash for provenance."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from imrl import registry

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """The schema, with the valid names taken from the registry (one source of truth)."""
    with open(path) as fh:
        schema = yaml.safe_load(fh)
    for key, names in (("datasets", registry.DATASETS), ("simulators", registry.SIMULATORS),
                       ("methods", registry.METHODS), ("settings", registry.METHODS)):
        schema["properties"][key]["propertyNames"]["enum"] = list(names)
    return schema


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    """One line per problem: the key, what is wrong, what would be valid."""
    where = _key_path(error)
    if error.validator == "enum" and "propertyNames" in error.absolute_schema_path:
        return f"{where}.{error.instance}: unknown name {error.instance!r}; valid values: {', '.join(error.validator_value)}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not valid; valid values: {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return f"{where}: missing required key(s) {missing}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"{where}: unknown key(s) {extra}; valid keys: {', '.join(allowed)}"
    if error.validator == "type":
        return f"{where}: {error.instance!r} has the wrong type; expected {error.validator_value}"
    return f"{where}: {error.message}"


def _fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    """Insert schema defaults for absent keys (recursively, following $ref)."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = json.loads(json.dumps(sub["default"]))
        if key in instance:
            _fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra, root)


def validate(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate in place (defaults filled); raise ConfigError listing every problem."""
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ConfigError(f"invalid configuration {source}:\n{lines}")
    _fill_defaults(config, schema, schema)
    for name in list(config["methods"]):
        config["methods"][name] = config["methods"][name] or {}
    for name, settings in config["settings"].items():
        supported = registry.METHODS[name].settings
        if name not in config["methods"] or not set(settings) <= set(supported):
            raise ConfigError(f"invalid configuration {source}:\n  - settings.{name}: {settings} must name a method "
                              f"of `methods` and a subset of the settings it supports {list(supported)}")
    if config["evaluation"]["table_k"] not in config["evaluation"]["ks"]:
        raise ConfigError(f"invalid configuration {source}:\n  - evaluation.table_k: "
                          f"{config['evaluation']['table_k']} must be one of evaluation.ks {config['evaluation']['ks']}")
    return config


def load(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        config = yaml.safe_load(fh)
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate(config, str(path))


def config_hash(obj: Any) -> str:
    """sha256 of the canonical JSON form (sorted keys): equal configs, equal hashes."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
