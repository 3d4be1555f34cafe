r"""Tests of botorch_archsearch/search/config.py: validation before any work."""

from __future__ import annotations

import dataclasses
import json

import pytest

from botorch_archsearch.exceptions import ArchSearchError
from botorch_archsearch.search.config import CompressConfig, check_config


def _with(**changes) -> CompressConfig:
    config = CompressConfig()
    for key, value in changes.items():
        section, name = key.split("__") if "__" in key else (None, key)
        if section is None:
            config = dataclasses.replace(config, **{name: value})
        else:
            sub = dataclasses.replace(getattr(config, section), **{name: value})
            config = dataclasses.replace(config, **{section: sub})
    return config


def test_defaults_are_valid():
    check_config(CompressConfig())


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(search__num_kernels=0), "search.num_kernels must be an integer >= 1, got 0"),
        (dict(search__steps=-1), "search.steps must be an integer >= 1"),
        (dict(teacher__name="alexnet"), "teacher.name must be one of ['mobilenetv2', 'resnet18'"),
        (dict(dataset__name="imagenet"), "dataset.name must be one of"),
        (dict(search__subset_prob=1.5), r"search.subset_prob must be a number in \(0, 1\], got 1.5"),
        (dict(search__shrink_range=[0.2, 1.3]), r"search.shrink_range must be a number in \[0, 1\], got 1.3"),
        (dict(search__shrink_range=[0.8, 0.2]), "low <= high"),
        (dict(search__removal_probs=[-0.1]), "search.removal_probs"),
        (dict(search__method="grid"), "search.method must be one of ['esnac', 'random', 'both', 'uniform', 'magnitude', 'evolutionary_synthesis'"),
        (dict(search__channel_order="random"), "search.channel_order must be one of ['even', 'magnitude']"),
        (dict(search__baselines=["esnac"]), "search.baselines must be a list of distinct one-shot methods"),
        (dict(search__baselines=["uniform", "uniform"]), "search.baselines must be a list of distinct"),
        (dict(search__baselines="uniform"), "search.baselines must be a list"),
        (dict(search__targets=[0.5, 0]), "search.targets must be a number in .0, 1., got 0"),
        (dict(search__targets=[]), "search.targets must be null or a non-empty list"),
        (dict(search__magnitude_scope="layer"), "search.magnitude_scope must be one of ['group', 'global']"),
        (dict(search__init="uniform"), "search.init must be one of ['random', 'oneshot']"),
        (dict(search__local_fraction=1.0), "search.local_fraction must be a number in .0, 1., got 1.0"),
        (dict(search__local_edits="random"), "search.local_edits must be one of ['perturb', 'mutate']"),
        (dict(search__shrink_spread=-0.1), "search.shrink_spread must be a number >= 0"),
        (dict(kernel__objective="mll"), "kernel.objective must be one of ['loo', 'exact']"),
        (dict(kernel__init_scale=0), "kernel.init_scale must be a finite number > 0, got 0"),
        (dict(kernel__init_scale=float("inf")), "kernel.init_scale must be a finite number > 0, got inf"),
        (dict(acquisition__name="ucb"), "acquisition.name must be one of"),
        (dict(acquisition__method="grid"), "acquisition.method must be one of"),
        (dict(evaluation__loss="ce"), "evaluation.loss must be one of ['mse', 'kl']"),
        (dict(evaluation__device="tpu"), "evaluation.device must be"),
        (dict(evaluation__bf16="yes"), "evaluation.bf16 must be true, false or null"),
        (dict(reward__measure="latency"), "reward.measure must be one of ['params', 'flops']"),
        (dict(reward__budget=0), "reward.budget must be a number > 0"),
        (dict(reward__kind="pareto", reward__budget=10), "reward.kind must be one of ['n2n', 'accuracy']"),
        (dict(reward__kind="accuracy"), "reward.kind=accuracy rewards accuracy within reward.budget, and none is set"),
        (dict(final__top_k=-1), "final.top_k must be an integer >= 0"),
        (dict(search__removal=False, search__shrinkage=False, search__skip=False), "at least one of"),
        (dict(seed=1.5), "seed must be an integer"),
    ],
)
def test_bad_values_name_the_key_and_what_is_accepted(changes, message):
    with pytest.raises(ArchSearchError, match=message.replace("[", r"\[").replace("]", r"\]")
                       if "\\" not in message else message):
        check_config(_with(**changes))


def test_from_dict_round_trip_and_unknown_keys():
    config = _with(search__num_kernels=3, seed=7)
    assert CompressConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ArchSearchError, match=r"^search: unknown key 'kernels'; accepted: \['baselines', "):
        CompressConfig.from_dict({"search": {"kernels": 3}})
    with pytest.raises(ArchSearchError, match=r"^evaluation.dask: unknown key 'worker'; accepted: \['address', "):
        CompressConfig.from_dict({"evaluation": {"dask": {"worker": 3}}})
    with pytest.raises(ArchSearchError, match=r"^unknown config key 'colour'; accepted: \['acquisition', "):
        CompressConfig.from_dict({"colour": "red"})
    with pytest.raises(ArchSearchError, match=r"^search must be a mapping of \['method', 'steps', .*\], got 5\.$"):
        CompressConfig.from_dict({"search": 5})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"seed": 1.5}, "seed must be an integer, got 1.5."),
        ({"teacher": {"lr": "fast"}}, "teacher.lr must be a number, got 'fast'."),
        ({"teacher": {"max_batches": "all"}}, "teacher.max_batches must be an integer or null, got 'all'."),
        ({"search": {"targets": [0.5, "half"]}}, "search.targets must be a list of numbers or null, got [0.5, 'half']."),
        ({"search": {"baselines": "uniform"}}, "search.baselines must be a list of strings, got 'uniform'."),
        ({"search": {"removal": None}}, "search.removal must be true or false, got None."),
    ],
)
def test_from_dict_checks_types_against_the_schema(values, message):
    with pytest.raises(ArchSearchError) as info:
        CompressConfig.from_dict(values)
    assert str(info.value) == message


def test_from_dict_converts_values_as_the_command_line_does():
    config = CompressConfig.from_dict({"search": {"removal": "false", "steps": "3", "subset_prob": 1}, "progress": 1})
    assert config.search.removal is False and config.search.steps == 3 and config.progress is True
    assert isinstance(config.search.subset_prob, float)
    check_config(config)


def test_a_config_built_in_python_holds_values_of_its_fields_types():
    for changes, message in [
        (dict(search__removal="no"), "search.removal must be true or false, got 'no'."),  # truthy, not False
        (dict(progress=1), "progress must be true, false or null (progress bars only on a terminal), got 1."),
        (dict(teacher__name=5), "teacher.name must be a string or null, got 5."),
        (dict(search={"method": "esnac"}), "search must be a SearchConfig (a mapping of ['method', "),
    ]:
        with pytest.raises(ArchSearchError) as info:
            check_config(_with(**changes))
        assert str(info.value).startswith(message), str(info.value)
    check_config(_with(teacher__lr=1, search__shrink_range=(0.25, 0.75)))  # an int for a float, a tuple for a list


def test_search_settings_is_the_deprecated_name_of_search_config():
    from botorch_archsearch.search import SearchConfig, SearchSettings

    assert SearchSettings is SearchConfig and isinstance(CompressConfig().search, SearchConfig)


def test_resumable_keys_and_the_differences_of_two_configs():
    from botorch_archsearch.search.config import (
        RESUMABLE_KEYS,
        config_differences,
        is_resumable,
        without_resumable,
    )

    assert is_resumable("evaluation.dask.workers") and is_resumable("progress") and not is_resumable("search.method")
    assert not is_resumable("evaluation.dask_x")
    values = CompressConfig().to_dict()
    identity = without_resumable(values)
    assert "steps" not in identity["search"] and "dask" not in identity["evaluation"] and "progress" not in identity
    assert identity["search"]["method"] == "esnac" and "steps" in values["search"]  # the argument is left as it was
    assert all(not is_resumable(k) for k in identity) and len(RESUMABLE_KEYS) == 6
    assert config_differences(identity, identity) == []
    given = json.loads(json.dumps(identity))
    given["teacher"]["name"], given["colour"] = "vgg19", "red"
    del given["seed"]
    assert config_differences(identity, given) == [
        'colour: started with (missing), given "red"',
        "seed: started with 0, given (missing)",
        'teacher.name: started with "resnet18", given "vgg19"',
    ]


@pytest.mark.slow  # a subprocess
def test_the_schema_is_registered_with_hydra_on_request_only():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from botorch_archsearch.search.config import SCHEMA_NAME, CompressConfig, register_configs\n"
        "assert 'hydra' not in sys.modules\n"
        "register_configs()\n"
        "from hydra.core.config_store import ConfigStore\n"
        "node = ConfigStore.instance().load(SCHEMA_NAME + '.yaml').node\n"
        "assert node.search.steps == 20 and node.teacher.width == 0.125\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_upgrade_saved_config_fills_newer_keys_as_the_old_code_ran():
    from botorch_archsearch.search import upgrade_saved_config

    current = _with(seed=5).to_dict()
    assert upgrade_saved_config(current) == current  # nothing to fill
    old = json.loads(json.dumps(current))
    del old["dataset"]["split_seed"], old["teacher"]["seed"], old["evaluation"]["bf16"]
    del old["kernel"]["init_scale"], old["teacher"]["kind"], old["teacher"]["module"], old["reward"]["kind"]
    del old["methods"]["n2n_over_budget"]
    old["evaluation"]["channels_last"] = False  # not the default: the upgrade must fill only what is missing
    assert upgrade_saved_config(old)["evaluation"]["channels_last"] is False
    del old["evaluation"]["channels_last"]
    upgraded = upgrade_saved_config(old)
    assert upgraded["evaluation"]["channels_last"] is True  # channels-last where the guard let it, as then
    assert upgraded["reward"]["kind"] == "n2n"  # the only reward then
    assert upgraded["teacher"]["kind"] == "zoo" and upgraded["teacher"]["module"] is None  # a zoo teacher, as then
    assert upgraded["kernel"]["init_scale"] == 1.0  # the initialisation of then
    assert upgraded["methods"]["n2n_over_budget"] == "zero"  # N2N's policy learnt from the rewards, as then
    assert "split_seed" not in old["dataset"]  # the argument is left as it was
    assert upgraded["dataset"]["split_seed"] == upgraded["teacher"]["seed"] == 5
    assert upgraded["evaluation"]["bf16"] is False  # float32 on a CPU, as then
    old["evaluation"]["device"] = "cuda:1"
    assert upgrade_saved_config(old)["evaluation"]["bf16"] is None  # bf16 where native, as then
    check_config(CompressConfig.from_dict(upgraded))


BOOLEAN_KEYS = [
    ("search", "removal", False), ("search", "shrinkage", False), ("search", "skip", False),
    ("dataset", "download", False), ("evaluation.dask", "dashboard", False), (None, "progress", True),
    ("evaluation", "bf16", True), ("evaluation", "channels_last", False),
]


@pytest.mark.parametrize("section, name, nullable", BOOLEAN_KEYS)
def test_every_boolean_setting_takes_only_true_or_false(section, name, nullable):
    key = f"{section}.{name}" if section else name
    nested = {}
    target = nested
    for part in (section.split(".") if section else []):
        target = target.setdefault(part, {})
    for good in (True, False) + ((None,) if nullable else ()):
        target[name] = good
        check_config(CompressConfig.from_dict(nested))
    accepted = "true, false or null" if nullable else "true or false"
    for bad in ("maybe", "flase", 0.0, [True]) + (() if nullable else (None,)):
        target[name] = bad  # what Hydra passes on for `key=maybe`, `key=flase`
        with pytest.raises(ArchSearchError) as info:
            check_config(CompressConfig.from_dict(nested))
        message = str(info.value)
        assert message.startswith(f"{key} must be {accepted}") and message.endswith(f"got {bad!r}.")
    for good, value in (("true", True), ("no", False), (1, True), (0, False)):  # OmegaConf's conversions
        target[name] = good
        config = CompressConfig.from_dict(nested)
        section_config = config
        for part in (section.split(".") if section else []):
            section_config = getattr(section_config, part)
        assert getattr(section_config, name) is value


def test_cuda_device_without_cuda_names_the_torch_build(monkeypatch):
    import torch

    for device in ("cuda:x", "cuda:", "gpu", "cuda:-1"):
        with pytest.raises(ArchSearchError, match=r"evaluation.device must be 'cpu', 'cuda' or 'cuda:N'"):
            check_config(_with(evaluation__device=device))
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch, "__version__", "2.13.0+cpu")
    with pytest.raises(ArchSearchError) as info:
        check_config(_with(evaluation__device="cuda"))
    message = str(info.value)
    assert message.startswith("evaluation.device='cuda', but this torch (2.13.0+cpu) is a build without CUDA")
    assert "CUDA build of torch 2.13.0 with pip" in message and "evaluation.device=cpu" in message
    assert "://" not in message and "pytorch.org" not in message  # no host to go out of date


def test_cuda_device_without_a_visible_gpu_or_with_a_missing_index(monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ArchSearchError, match=r"device='cuda:0', but torch .* \(built with CUDA 12.8\) sees no GPU"):
        check_config(_with(evaluation__device="cuda:0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for device in ("cuda", "cuda:0", "cuda:1"):
        check_config(_with(evaluation__device=device))
    with pytest.raises(ArchSearchError, match=r"device='cuda:2', but only 2 GPUs are visible \(cuda:0 to cuda:1\)"):
        check_config(_with(evaluation__device="cuda:2"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ArchSearchError, match=r"device='cuda:1', but only 1 GPU is visible \(cuda:0\)\."):
        check_config(_with(evaluation__device="cuda:1"))


def test_read_saved_config(tmp_path):
    from botorch_archsearch.search import read_saved_config

    config = _with(seed=3).to_dict()
    (tmp_path / "config.json").write_text(json.dumps(config, indent=2))
    assert read_saved_config(tmp_path) == config
    with pytest.raises(ArchSearchError, match="is not a run directory \\(no config.json\\)"):
        read_saved_config(tmp_path / "elsewhere")
    text = json.dumps(config, indent=2).splitlines()
    text[2] = text[2].rstrip(",")  # a hand edit that lost a comma
    (tmp_path / "config.json").write_text("\n".join(text))
    with pytest.raises(ArchSearchError) as info:
        read_saved_config(str(tmp_path))
    message = str(info.value)
    where = repr(str(tmp_path / "config.json"))
    assert message.startswith(f"{where} is not valid JSON (Expecting ',' delimiter at line 4, column")
    assert ".hydra/config.yaml" in message and "start the run again" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ArchSearchError, match="holds a JSON list, not the config object"):
        read_saved_config(tmp_path)


@pytest.mark.parametrize(
    "teacher, message",
    [
        (dict(kind="timm"), "teacher.kind must be one of ['module', 'torchvision', 'zoo'], got 'timm'."),
        (dict(kind="torchvision", name="efficientnet_b9"),
         "teacher.name='efficientnet_b9' is not a torchvision classification model (did you mean efficientnet_b"),
        (dict(kind="torchvision", name="resnet"),
         ("teacher.name='resnet' is not a torchvision classification model (did you mean resnet50 or resnet34 or "
          "resnet18?); accepted (teacher=torchvision): alexnet, convnext_base, ")),
        (dict(kind="torchvision", name=None), "teacher.name=None is not a torchvision classification model; accepted"),
        (dict(kind="zoo", name="efficientnet_b0"), "teacher.name must be one of ['mobilenetv2', 'resnet18', "),
        (dict(kind="module", name=None), "teacher.module must be set for teacher.kind=module: 'package.module:function'"),
        (dict(kind="module", name=None, module="mynets.make_net"),
         "teacher.module='mynets.make_net': expected 'package.module:function'"),
        (dict(kind="module", name=None, module="no_such_module_here:make_net"),
         "teacher.module='no_such_module_here:make_net': no module named 'no_such_module_here' on the Python path"),
        (dict(kind="module", name=None, module="json:no_such_function"),
         "teacher.module='json:no_such_function': 'json' has no attribute 'no_such_function'; its functions and "),
        (dict(kind="module", name="resnet18", module="json:loads"),
         ("teacher.name='resnet18' and teacher.module='json:loads' are both set: a teacher is a named network or your "
          "module, not both. For your module: teacher=module teacher.module=json:loads (teacher.name=null)")),
        (dict(kind="zoo", name="resnet18", module="json:loads"),
         ("teacher.module='json:loads' is set but teacher.kind='zoo' builds teacher.name='resnet18': a teacher is a "
          "named network or your module, not both. For your module: teacher=module teacher.module=json:loads; for "
          "the zoo network 'resnet18', drop teacher.module.")),
        (dict(kind="torchvision", name="resnet18", module="json:loads"),
         "teacher.module='json:loads' is set but teacher.kind='torchvision' builds teacher.name='resnet18'"),
    ],
)
def test_teacher_kind_name_and_module_are_checked_before_any_work(teacher, message):
    with pytest.raises(ArchSearchError) as info:
        check_config(CompressConfig.from_dict({"teacher": teacher}))
    assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)


def test_teacher_of_each_kind_is_valid():
    check_config(CompressConfig.from_dict({"teacher": {"kind": "torchvision", "name": "efficientnet_b0"}}))
    check_config(CompressConfig.from_dict({"teacher": {"kind": "module", "name": None, "module": "json:loads"}}))
