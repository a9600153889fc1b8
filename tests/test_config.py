"""The config schema: the shipped configs are valid, and each kind of mistake (in the
config's own keys, a method's hyper-parameters, a budget or a dataset's params) is
reported with the key and the valid values or the expected type."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time

import pytest
import yaml

from imrl import api, config, registry
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
    from imrl.runs.run import config_hash

    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_settings_narrow_a_method_to_what_it_supports(default_config):
    default_config["settings"] = {"random": ["online"]}
    assert config.validate(copy.deepcopy(default_config))["settings"] == {"random": ["online"]}
    default_config["settings"] = {"popularity": ["online"]}   # popularity has no online form
    assert "settings.popularity" in _error(default_config)


# --- Hyper-parameters, budgets and dataset params: checked against what each declares ---

CLASSES = sorted({(spec.name, setting) for spec in registry.METHODS.values() if spec.available
                  for setting in spec.settings})


@pytest.mark.parametrize("name, setting", CLASSES)
def test_every_method_declares_defaults_that_pass_their_own_check(name, setting):
    spec = registry.METHODS[name]
    cls = spec.load(setting)
    assert isinstance(cls.defaults, dict), f"{cls.__qualname__} declares no defaults"
    assert set(spec.defaults) <= set(cls.defaults), "the registry's fixed params must be hyper-parameters"
    schema = config.method_params_schema(name, [setting])
    assert not list(config.Validator(schema).iter_errors(json.loads(json.dumps(cls.defaults))))


def test_a_misspelt_hyper_parameter_names_the_key_and_the_valid_ones(default_config):
    default_config["methods"]["sasrec"] = {**default_config["methods"]["sasrec"], "learning_rate": 0.1}
    default_config["methods"]["deers"] = {"hiden": 8}   # offline and online classes: one line
    message = _error(default_config)
    assert "methods.sasrec: unknown key(s) ['learning_rate']; valid keys: " in message
    assert "lr" in message.split("methods.sasrec")[1] and "max_len" in message
    assert message.count("methods.deers: unknown key(s) ['hiden']") == 1 and "hidden" in message


@pytest.mark.parametrize("key, value, expected", [
    ("d", "32", "expected integer"),
    ("d", 32.0, "expected integer"),                  # 1.0 is not an integer here
    ("d", True, "expected integer"),
    ("lr", "1e-3", "expected number"),                # YAML reads 1e-3 (no dot) as a string
    ("adam_betas", [0.9, "x"], "methods.sasrec.adam_betas.1: 'x' has the wrong type; expected number"),
    ("max_len", "long", "expected integer or 'auto'"),   # SASRec's param_schema
])
def test_a_wrong_type_names_the_key_and_the_expected_type(default_config, key, value, expected):
    default_config["methods"]["sasrec"] = {**default_config["methods"]["sasrec"], key: value}
    message = _error(default_config)
    assert f"methods.sasrec.{key}" in message and expected in message


def test_values_of_the_declared_types_pass(default_config):
    default_config["methods"]["sasrec"] = {"max_len": "auto", "lr": 1, "adam_betas": [0.9, 0.99], "clip_grad_norm": 5}
    default_config["methods"]["pgpr"] = {"hidden": [64], "beam": [5, 1]}
    default_config["methods"]["imrl"] = {"target_entropy": -2.5, "env": {"slate_size": 5}}
    config.validate(default_config)


class NoDefaults(api.OfflineMethod):
    def fit(self, split):
        pass

    def score(self, users, phase):
        pass


def test_a_method_without_defaults_is_refused(default_config, monkeypatch):
    monkeypatch.setitem(registry.METHODS, "popularity",
                        registry.MethodSpec("popularity", "tests.test_config:NoDefaults", (registry.OFFLINE,), "test"))
    message = _error(default_config)
    assert "methods.popularity" in message and "NoDefaults declares no `defaults`" in message


def test_budgets_are_checked(default_config):
    default_config["datasets"]["synthetic"]["budget"] = {"env_step": 100, "epochs": 2.5}
    default_config["simulators"]["recsim"]["budget"] = {"update_ratio": "0.1"}
    message = _error(default_config)
    assert "datasets.synthetic.budget: unknown key(s) ['env_step']; valid keys: env_steps, epochs" in message
    assert "datasets.synthetic.budget.epochs: 2.5 has the wrong type; expected integer" in message
    assert "simulators.recsim.budget.update_ratio: '0.1' has the wrong type; expected number" in message


def test_dataset_params_are_checked_against_the_converter(default_config):
    default_config["datasets"]["synthetic"]["params"] = {"n_user": 100, "n_items": "800"}
    default_config["datasets"]["book-crossing"] = {"params": {"top_country": 3, "min_age": 5.5, "with": "users"},
                                                   "preprocess": {"min_rating": None, "kcore": 5}}
    default_config["datasets"]["ml-20m"] = {"params": {"varient": "x"}, "preprocess": {"min_rating": 4, "kcore": 5}}
    message = _error(default_config)
    assert "datasets.synthetic.params: unknown key(s) ['n_user']; valid keys: " in message and "n_users" in message
    assert "datasets.synthetic.params.n_items: '800' has the wrong type; expected integer" in message
    assert "datasets.book-crossing.params: unknown key(s) ['top_country']" in message and "top_countries" in message
    assert "datasets.book-crossing.params.min_age: 5.5 has the wrong type; expected integer" in message
    assert "datasets.book-crossing.params.with: 'users' has the wrong type; expected array" in message
    assert "datasets.ml-20m.params: unknown key(s) ['varient']; valid keys: " in message and "variant" in message


def _check_config(path):
    return subprocess.run([sys.executable, "-m", "imrl", "check-config", str(path)], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)


def test_check_config_names_a_typo_without_a_traceback(default_config, tmp_path):
    default_config["methods"]["imrl"]["hiden"] = 64
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(default_config))
    result = _check_config(path)
    assert result.returncode != 0
    assert "methods.imrl: unknown key(s) ['hiden']; valid keys: " in result.stderr and "Traceback" not in result.stderr
    assert _check_config(REPO_ROOT / "config/config.yaml").stdout.strip().endswith("config.yaml: valid")


def test_a_typo_stops_the_dry_run_within_seconds(tmp_path):
    from tests.test_workflow import snakemake, tiny_config

    path = tiny_config(tmp_path, {"random": {}, "sasrec": {"d": 8, "epoch": 1}})
    started = time.monotonic()
    result = snakemake(tmp_path, path, "-n")
    assert result.returncode != 0 and time.monotonic() - started < 60
    output = result.stdout + result.stderr
    assert "methods.sasrec: unknown key(s) ['epoch']; valid keys: " in output and "epochs" in output
    assert "train_offline" not in output
