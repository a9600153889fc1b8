"""Workflow configuration: JSON-schema validation with messages that name the key and
list the valid values, defaults filled in.

Two passes, one mechanism: the config's own schema (config/schemas/config.schema.yaml,
budgets included), then a schema derived from what each named method and dataset
declares: a method's ``defaults`` (required of every method) and a dataset converter's
``DEFAULTS`` give the valid keys, and each default's JSON type the expected type (a float
default takes integers; a ``None`` default any value). A class may refine a key with
``param_schema = {key: {JSON schema}}``, e.g. a setting that takes an integer or "auto".
"""

from __future__ import annotations

import importlib
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


#: JSON Schema's types, except that 1.0 is not an integer (a hyper-parameter written 32.0
#: where a size is expected is a mistake, not 32).
Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)))


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
    if error.validator == "anyOf":
        options = [repr(option["const"]) if "const" in option else option.get("type")
                   for option in error.validator_value]
        return f"{where}: {error.instance!r} is not valid; expected {' or '.join(map(str, options))}"
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


def _json_type(value: Any) -> str | None:
    """The JSON type a default stands for; None (a None default) accepts any value."""
    for types, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                        ((list, tuple), "array"), (dict, "object")):
        if isinstance(value, types):
            return name
    return None


def params_schema(defaults: dict[str, Any], refined: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema of a params mapping whose keys and types are given by `defaults`: no
    other key; each value of its default's type (a list's items of its items' type, when
    they share one); `refined` replaces the schema of single keys."""
    properties = {}
    for key, default in defaults.items():
        kind = _json_type(default)
        properties[key] = {"type": kind} if kind else {}
        items = {_json_type(item) for item in default} if kind == "array" else set()
        if len(items) == 1 and None not in items:
            properties[key]["items"] = {"type": items.pop()}
    return {"type": "object", "additionalProperties": False, "properties": {**properties, **(refined or {})}}


def method_params_schema(name: str, settings: list[str]) -> dict[str, Any]:
    """The schema of method `name`'s params: those of each class it runs as in `settings`
    (imports them). ConfigError when a class declares no ``defaults``."""
    spec = registry.method(name)
    schemas = []
    for setting in settings:
        cls = spec.load(setting)
        if not isinstance(cls.defaults, dict):
            raise ConfigError(f"methods.{name}: {cls.__module__}.{cls.__qualname__} declares no `defaults` (its "
                              f"hyper-parameters and their default values, required of every method: README.md, "
                              f"\"Adding a method\")")
        schemas.append(params_schema(cls.defaults, cls.param_schema))
    return {"allOf": schemas}


#: The JSON types of the keys a raw dataset's params give the downloader
#: (imrl.data.sources.SOURCE_KEYS); their values are checked by sources.check_params.
SOURCE_PARAMS = {"variant": {"type": "string"}, "with": {"type": "array", "items": {"type": "string"}},
                 "files": {"type": "object"}}


def dataset_params_schema(name: str) -> dict[str, Any]:
    """The schema of dataset `name`'s params: its converter module's ``DEFAULTS`` (a module
    without them takes no options), and the downloader's keys for a dataset with raw files."""
    from imrl.data import sources

    module = importlib.import_module(registry.DATASETS[name].split(":")[0])
    downloader = {key: SOURCE_PARAMS.get(key, {}) for key in sources.SOURCE_KEYS} if name in sources.SOURCES else {}
    return params_schema(getattr(module, "DEFAULTS", {}), downloader)


def _declared_params_schema(config: dict[str, Any]) -> dict[str, Any]:
    """One schema for the params of every available method and dataset the (filled)
    config names, so that their errors carry the config's key paths."""
    methods = {name: method_params_schema(name, config["settings"].get(name, list(registry.METHODS[name].settings)))
               for name in config["methods"] if registry.METHODS[name].available}
    datasets = {name: {"properties": {"params": dataset_params_schema(name)}}
                for name in config["datasets"] if registry.DATASETS[name] is not None}
    return {"properties": {"methods": {"properties": methods}, "datasets": {"properties": datasets}}}


def _check(config: dict[str, Any], schema: dict[str, Any], source: str) -> None:
    errors = sorted(Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    lines = list(dict.fromkeys(f"  - {_describe(e)}" for e in errors))   # a key both classes of a method reject: once
    if lines:
        raise ConfigError(f"invalid configuration {source}:\n" + "\n".join(lines))


def validate(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate in place (defaults filled); raise ConfigError listing every problem."""
    schema = load_schema()
    _check(config, schema, source)
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
    _check(config, _declared_params_schema(config), source)
    return config


def load(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        config = yaml.safe_load(fh)
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate(config, str(path))
