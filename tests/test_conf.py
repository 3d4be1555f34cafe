r"""Tests of ``conf/``, the Hydra app's configs over the schema of
botorch_archsearch/search/config.py: every group option and experiment composes into a valid config,
and the YAML files hold only what differs from the schema's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

import botorch_archsearch.__main__  # noqa: F401  (registers the schema with Hydra's ConfigStore)
from botorch_archsearch.search.config import CompressConfig, check_config

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("teacher", "dataset", "search")
# What each option is, when it is the schema's default too.
IDENTITY_KEYS = {"teacher": ("name",), "dataset": ("name",), "search": ("method",)}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    values = OmegaConf.to_container(cfg, resolve=True)
    assert values.pop("resume") is None
    return values


@pytest.mark.parametrize(
    "overrides",
    [[]] + [[f"{group}={option}"] for group in GROUPS for option in _options(group)]
    + [[f"+experiment={option}"] for option in _options("experiment")],
    ids=lambda overrides: " ".join(overrides) or "default",
)
def test_every_option_composes_into_a_valid_config(overrides):
    values = _compose(overrides)
    if overrides == ["teacher=module"]:
        values["teacher"]["module"] = "json:loads"  # required, given on the command line
    if overrides == ["+experiment=table3_transfer"]:
        values["kernel"]["transfer_from"] = None  # required: a run directory, given on the command line
    config = CompressConfig.from_dict(values)
    check_config(config)
    assert config.to_dict() == values


def test_the_default_job_is_the_demo():
    config = CompressConfig.from_dict(_compose([]))
    assert (config.teacher.name, config.teacher.width, config.dataset.name, config.search.method) == \
        ("resnet18", 0.125, "digits", "esnac")
    assert (config.search.steps, config.search.channel_order, config.search.init) == (5, "magnitude", "oneshot")
    paper = CompressConfig.from_dict(_compose(["+experiment=paper"]))
    assert (paper.search.steps, paper.search.channel_order, paper.search.init) == (20, "even", "random")


def test_the_yaml_files_hold_only_what_differs_from_the_schema():
    defaults = CompressConfig()
    for group in GROUPS:
        section = getattr(defaults, group)
        for option in _options(group):
            values = yaml.safe_load((CONF / group / f"{option}.yaml").read_text()) or {}
            same = [k for k, v in values.items() if k not in IDENTITY_KEYS[group] and getattr(section, k) == v]
            assert not same, f"conf/{group}/{option}.yaml repeats the schema's defaults of {same}"
    root = yaml.safe_load((CONF / "config.yaml").read_text())
    for name, values in root.items():
        if name in ("defaults", "hydra"):
            continue
        section = getattr(defaults, name)
        same = [k for k, v in values.items() if getattr(section, k) == v]
        assert not same, f"conf/config.yaml repeats the schema's defaults of {name}.{same}"
    assert root["defaults"][0] == "compress_schema" and root["defaults"][-1] == "_self_"
