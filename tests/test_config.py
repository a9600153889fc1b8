"""The config schema: the shipped configs are valid, and each kind of mistake is
reported with the key and the valid values."""

from __future__ import annotations

import copy

import pytest
import yaml

from imrl import config, registry
from tests.conftest import REPO_ROOT


@pytest.fixture()
def default_config():
    return yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_are_valid(name):
    loaded = config.load(REPO_ROOT / "config" / name)
    assert loaded["seeds"]


def test_defaults_are_filled(default_config):
    del default_config["evaluation"]["batch_size"]
    del default_config["simulators"]
    default_config["datasets"]["synthetic"]["preprocess"].pop("valid_frac")
    loaded = config.validate(default_config)
    assert loaded["evaluation"]["batch_size"] == 1024
    assert loaded["simulators"] == {}
    assert loaded["datasets"]["synthetic"]["preprocess"]["valid_frac"] == 0.1


def _error(cfg) -> str:
    with pytest.raises(config.ConfigError) as info:
        config.validate(cfg, "test.yaml")
    return str(info.value)


def test_unknown_method_names_key_and_lists_valid(default_config):
    default_config["methods"]["sasrek"] = {}
    message = _error(default_config)
    assert "methods.sasrek" in message and "sasrec" in message and "popularity" in message


def test_unknown_dataset_and_simulator(default_config):
    default_config["datasets"]["movielens"] = copy.deepcopy(default_config["datasets"]["synthetic"])
    default_config["simulators"] = {"virtualtaobao": {}}
    message = _error(default_config)
    assert "datasets.movielens" in message and "ml-20m" in message
    assert "simulators.virtualtaobao" in message and "virtualtb" in message


def test_wrong_type_and_missing_key(default_config):
    default_config["seeds"] = ["0"]          # what --config seeds=[0] delivers
    del default_config["datasets"]["synthetic"]["preprocess"]["kcore"]
    message = _error(default_config)
    assert "seeds.0" in message and "integer" in message
    assert "datasets.synthetic.preprocess" in message and "kcore" in message


def test_unknown_key_lists_valid_keys(default_config):
    default_config["evaluation"]["topk"] = 20
    message = _error(default_config)
    assert "evaluation" in message and "topk" in message and "table_k" in message


def test_table_k_must_be_evaluated(default_config):
    default_config["evaluation"]["table_k"] = 50
    assert "table_k" in _error(default_config)


def test_schema_names_come_from_registry():
    schema = config.load_schema()
    assert schema["properties"]["methods"]["propertyNames"]["enum"] == list(registry.METHODS)
    assert schema["properties"]["datasets"]["propertyNames"]["enum"] == list(registry.DATASETS)


def test_config_hash_is_order_independent():
    assert config.config_hash({"a": 1, "b": [1, 2]}) == config.config_hash({"b": [1, 2], "a": 1})
    assert config.config_hash({"a": 1}) != config.config_hash({"a": 2})


def test_settings_narrow_a_method_to_what_it_supports(default_config):
    default_config["settings"] = {"random": ["online"]}
    assert config.validate(copy.deepcopy(default_config))["settings"] == {"random": ["online"]}
    default_config["settings"] = {"popularity": ["online"]}   # popularity has no online form
    assert "settings.popularity" in _error(default_config)
