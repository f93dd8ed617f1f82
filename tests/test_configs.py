"""Every config file composes against the structured-config schema and builds a request."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetopt.cli.config import replay_config_from, request_from_config
from hetopt.cli.main import compose_config
from hetopt.errors import InputError
from hetopt.workloads import config_dir

GROUPS = sorted(
    (g.name, p.stem)
    for g in config_dir().iterdir()
    if g.is_dir() and g.name != "hydra"
    for p in g.glob("*.yaml")
)


@pytest.mark.parametrize("group, option", GROUPS, ids=[f"{g}={o}" for g, o in GROUPS])
def test_every_config_file_composes_and_validates(group: str, option: str) -> None:
    cfg = compose_config([f"{group}={option}"])
    request = request_from_config(cfg)  # builds every frozen dataclass: ranges checked
    replay_config_from(cfg, plan_rate_per_s=1.0)
    assert request.solver.threads >= 1
    if group == "whatif":
        assert cfg["study"]["name"] == option and cfg["study"]["x"]


def test_whatif_studies_carry_their_grid() -> None:
    from hydra import compose, initialize_config_dir

    from hetopt.cli.schema import register

    register()
    for path in sorted((config_dir() / "whatif").glob("*.yaml")):
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(
                config_name="config", overrides=[f"whatif={path.stem}"], return_hydra_config=True
            )
        params = dict(cfg.hydra.sweeper.params)
        assert cfg.study.x in params, path.name
        assert cfg.study.hue is None or cfg.study.hue in params, path.name


@pytest.mark.parametrize(
    "override, key, why",
    [
        ("sla.e2e_s=fast", "sla.e2e_s", "could not be converted to Float"),
        ("solver.threads=1.5", "solver.threads", "Integer"),
        ("sla.foo=1", "sla.foo", "not in"),
        ("tco.include_operating_cost=maybe", "tco.include_operating_cost", "not a valid bool"),
        ("hardware.inventory.H100=many", "hardware.inventory.H100", "Integer"),
        ("mlir.targets=cuda", "mlir.targets", "mlir.targets"),
        ("overwrite=maybe", "overwrite", "not a valid bool"),
    ],
)
def test_schema_rejects_bad_values_naming_the_key(override: str, key: str, why: str) -> None:
    with pytest.raises(InputError) as err:
        compose_config([override])
    text = str(err.value)
    assert key in text and why in text


def test_device_keys_of_mappings_need_no_plus() -> None:
    """`hardware.inventory.B200=8` and `mlir.targets.H100=cuda:sm_80` (README examples)."""
    cfg = compose_config(
        ["hardware.inventory.B200=8", "+hardware.inventory.H100=2", "mlir.targets.H100=cuda:sm_80"]
    )
    assert cfg["hardware"]["inventory"] == {"B200": 8, "H100": 2}
    assert cfg["mlir"]["targets"] == {"H100": "cuda:sm_80"}


def test_run_dir_is_not_a_config_key() -> None:
    """`run_dir=` is an alias of hydra.run.dir, so the job config does not carry it."""
    assert "run_dir" not in compose_config(["run_dir=somewhere"])


def test_ranges_are_checked_when_the_request_is_built() -> None:
    with pytest.raises(InputError, match="pue"):
        request_from_config(compose_config(["tco.pue=0.5"]))
    with pytest.raises(InputError, match="price_scale"):
        from hetopt.pipeline import prepare

        prepare(request_from_config(compose_config(["+hardware.price_scale.B200=-1"])))


def test_schema_follows_the_library_dataclasses() -> None:
    """A field added to a library dataclass is a config key (no second definition)."""
    import dataclasses

    from hetopt.cli.schema import schema_of
    from hetopt.costs.tco import TcoParams

    lib = {f.name for f in dataclasses.fields(TcoParams)}
    assert {f.name for f in dataclasses.fields(schema_of(TcoParams))} == lib
    assert set(compose_config([])["tco"]) == lib


def test_config_dir_is_the_repository_tree() -> None:
    assert (config_dir() / "config.yaml").exists()
    assert Path(config_dir(), "hydra", "launcher", "local.yaml").exists()


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["sla.e2e=1"], "Did you mean 'sla.e2e_s'?"),
        (["workload.request_rate_per_sec=3"], "Did you mean 'workload.request_rate_per_s'?"),
        (
            ["workload=rag_agent", "workload.reqest_rate_per_s=3"],
            "Did you mean 'workload.request_rate_per_s'?",
        ),
        (["solvr=cpsat"], "Did you mean 'solver'?"),
        (["solver=cpsat", "solver.time_limt_s=2"], "Did you mean 'solver.time_limit_s'?"),
        (["workload=voice_agnt"], "Did you mean 'workload=voice_agent'?"),
    ],
)
def test_misspelt_override_gets_the_closest_key(
    overrides: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt key or option is named with the closest valid one, not a '+' to append it."""
    from hetopt.cli.main import main

    assert main(["plan", *overrides]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert needle in err and "Traceback" not in err and "+" + overrides[-1] not in err


def test_misspelt_group_on_a_dotted_path(capsys: pytest.CaptureFixture[str]) -> None:
    from hetopt.cli.main import main

    assert main(["plan", "soler.time_limit_s=3"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Did you mean 'solver'?" in err and "+soler" not in err
