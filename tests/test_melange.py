"""Mélange's problem as an input (issue 17 item 4): reading its JSON, the keyed problem, the
published answer on every backend, agreement with a re-implementation of its ILP, the
``hetopt melange`` command and every bad input."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hetopt._solverlibs import pulp  # ortools first, then pulp (see there)
from hetopt.cli.main import main
from hetopt.errors import InputError
from hetopt.melange import (
    MELANGE_EXAMPLE,
    MelangeInstance,
    load_melange,
    melange_instance,
    melange_problem,
    plan_melange,
)
from hetopt.oracle import evaluate_assignment
from hetopt.solvers import SolverOptions, SolveStatus, available_backends

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "melange" / "example.json"
PUBLISHED = {"A10G": 3, "A100-80GB": 1}  # melange-release README.md, "Solver Output"
MILP_BACKENDS = ("highs", "cbc", "cpsat")


def _write(tmp_path: Path, data: Any, name: str = "m.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


# --- The shipped example -----------------------------------------------------------------------


def test_shipped_example_is_melanges_file() -> None:
    """examples/melange/example.json is Mélange's example, read as Mélange reads it."""
    assert json.loads(EXAMPLE.read_text()) == MELANGE_EXAMPLE
    inst = load_melange(EXAMPLE)
    assert inst.name == "example" and inst.source == str(EXAMPLE)
    assert inst.as_dict() == MELANGE_EXAMPLE
    assert inst.shape == (2, 2) and inst.gpu_names == ("A10G", "A100-80GB")
    assert (inst.total_request_rate, inst.slice_factor) == (30.0, 1)
    assert "tyler-griggs/melange-release" in (EXAMPLE.parent / "README.md").read_text()


@pytest.mark.parametrize("backend", available_backends())
def test_published_answer_on_every_backend(backend: str) -> None:
    """Mélange's published answer for its example: 3 A10G + 1 A100-80GB at 6.70 $/h."""
    res = plan_melange(load_melange(EXAMPLE), SolverOptions(backend=backend))
    out = res.as_melange()
    assert {g: out[g] for g in PUBLISHED} == PUBLISHED
    assert list(out) == ["A10G", "A100-80GB", "cost"]  # Mélange's form and order
    assert out["cost"] == pytest.approx(6.70, abs=1e-9)
    assert res.cost_usd_per_h == pytest.approx(6.70, abs=1e-9)
    assert res.status is SolveStatus.OPTIMAL and res.verdict == "proven optimal"
    assert res.verified and res.verification == ()
    assert res.recomputed_cost_usd_per_h == pytest.approx(6.70, abs=1e-9)
    # one whole bucket on three A10Gs (load 3.0), the other three on one A100 (<= 1.0)
    on_a10g = [b for b, s in res.split.items() if s["A10G"] == 1.0]
    assert len(on_a10g) == 1 and res.gpu_load["A10G"] == pytest.approx(3.0)
    assert res.gpu_load["A100-80GB"] <= 1.0 + 1e-9


@pytest.mark.parametrize("slice_factor", [2, 4, 8])
@pytest.mark.parametrize("backend", MILP_BACKENDS)
def test_finer_slices_give_5_69(backend: str, slice_factor: int) -> None:
    """Slicing the buckets lets a bucket straddle GPU types: 2 A10G + 1 A100 at 5.69 $/h."""
    res = plan_melange(load_melange(EXAMPLE), SolverOptions(backend=backend), slice_factor)
    assert res.slice_factor == slice_factor
    assert dict(res.gpu_counts) == {"A10G": 2, "A100-80GB": 1}
    assert res.cost_usd_per_h == pytest.approx(5.69, abs=1e-9)
    assert res.proven_optimal and res.verified
    for split in res.split.values():
        assert sum(split.values()) == pytest.approx(1.0)
        assert all(
            f * slice_factor == pytest.approx(round(f * slice_factor)) for f in split.values()
        )


def test_brute_force_agrees_with_two_slices() -> None:
    """Brute force (judged by the oracle) reaches 5.69 as well where it can enumerate
    (2 slices: 2^8 assignments; 4 slices take 65,536 and 8 are refused)."""
    res = plan_melange(load_melange(EXAMPLE), SolverOptions(backend="bruteforce"), 2)
    assert res.cost_usd_per_h == pytest.approx(5.69, abs=1e-9) and res.verified
    with pytest.raises(InputError, match="bruteforce would enumerate"):
        plan_melange(load_melange(EXAMPLE), SolverOptions(backend="bruteforce"), 8)


# --- The keyed problem ---------------------------------------------------------------------------


def test_problem_maps_slices_to_operators_and_gpus_to_keys() -> None:
    inst = melange_instance(MELANGE_EXAMPLE)
    p = melange_problem(inst, slice_factor=2)
    assert p.ops == tuple(f"b{i}x{j}/s{s}" for i in (0, 1) for j in (0, 1) for s in (0, 1))
    assert p.op_visits.tolist() == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.25, 0.25, 0.1, 0.1])
    assert p.request_rate_per_s == 30.0 and p.key_names == ("A10G", "A100-80GB")
    assert p.key_devices_per_replica.tolist() == [1, 1]
    assert p.device_cost_usd_per_h.tolist() == [1.01, 3.67]
    assert (p.opt_dedicated == 0).all() and (p.opt_latency_s == 0).all()
    assert p.n_options == 16 and len(p.edge_src) == 0 and p.sla.e2e_s is None
    # load of a slice = r_b / (S T[b, g]): b1x0 is 15 req/s, T = 5 and 40
    b1x0 = p.options_of(p.ops.index("b1x0/s0"))
    assert p.opt_key_load[b1x0].tolist() == pytest.approx([15 / 2 / 5, 15 / 2 / 40])  # type: ignore[index]
    raw = p.raw_inputs
    assert raw is not None and raw.max_utilization == 1.0
    assert set(raw.rows["pool_key"]) == {"A10G", "A100-80GB"}
    assert len(raw.rows) == p.n_options


def test_zero_share_bucket_adds_no_operator_and_unserving_gpu_no_key() -> None:
    """A bucket with share 0 is no operator (even when no GPU serves it); a GPU type that
    serves no remaining bucket is no pool key and gets 0 GPUs."""
    data = json.loads(json.dumps(MELANGE_EXAMPLE))
    data["workload_distribution"] = [[0.3, 0.0], [0.5, 0.2]]
    data["gpu_info"]["A10G"]["tputs"] = [[2, 0], [5, 2]]
    data["gpu_info"]["A100-80GB"]["tputs"] = [[20, 0], [40, 20]]
    data["gpu_info"]["L4"] = {"cost": 0.5, "tputs": [[0, 3], [0, 0]]}  # serves b0x1 only
    inst = melange_instance(data)
    p = melange_problem(inst, slice_factor=2)
    assert not any(op.startswith("b0x1") for op in p.ops) and p.n_ops == 6
    assert p.key_names == ("A10G", "A100-80GB") and p.devices[-1] == "L4"
    res = plan_melange(inst)
    assert res.gpu_counts["L4"] == 0 and "L4" in res.as_melange()
    assert "b0x1" not in res.split and res.verified


def test_oracle_catches_an_undersized_gpu_count() -> None:
    """The oracle (not the formulations) judges the published counts: one A10G too few for
    the example's plan is a violation."""
    inst = load_melange(EXAMPLE)
    res = plan_melange(inst)
    p = melange_problem(inst)
    assert p.raw_inputs is not None
    assignment = {op: (gpu, "replica") for op, gpu in res.assignment.items()}
    ok = evaluate_assignment(
        p.raw_inputs, assignment, {}, llm_pool_counts={"A10G": 3, "A100-80GB": 1}
    )
    assert ok.feasible and ok.tco_usd_per_h == pytest.approx(6.70)
    short = evaluate_assignment(
        p.raw_inputs, assignment, {}, llm_pool_counts={"A10G": 2, "A100-80GB": 1}
    )
    assert any("LLM pool A10G has 2 replicas" in v for v in short.violations)


def test_slice_factor_argument_is_checked() -> None:
    inst = melange_instance(MELANGE_EXAMPLE)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="slice_factor"):
            melange_problem(inst, slice_factor=bad)  # type: ignore[arg-type]


# --- Agreement with a reference re-implementation of Mélange's ILP ---------------------------------


def reference_melange(
    inst: MelangeInstance, slice_factor: int
) -> tuple[float, dict[str, int], list[str]]:
    """Mélange's ILP (``melange/solver.py``) written again here with PuLP and solved by CBC:
    slices of ``r_b / S``, binary ``x[s, g]`` with ``sum_g x = 1`` (C1), integer
    ``y_g >= sum_s x[s, g] (r_b / S) / T[b, g]`` (C2), minimise ``sum_g cost_g y_g``. A GPU type
    with throughput 0 gets no variable for the bucket (Mélange itself would divide by zero).

    Returns the cost, the GPU counts and the GPU type of each slice (Mélange's order).
    """
    rate = inst.total_request_rate
    slices = []  # (bucket row, col, rate of one slice)
    for row in range(inst.shape[0]):
        for col in range(inst.shape[1]):
            share = inst.workload_distribution[row][col]
            slices += [(row, col, share * rate / slice_factor)] * slice_factor
    prob = pulp.LpProblem("melange_reference", pulp.LpMinimize)
    x = {
        (s, g): prob.add_variable(f"x_{s}_{g}", cat="Binary")
        for s, (i, j, _) in enumerate(slices)
        for g, gpu in enumerate(inst.gpus)
        if gpu.tputs[i][j] > 0
    }
    y = [prob.add_variable(f"y_{g}", lowBound=0, cat="Integer") for g in range(len(inst.gpus))]
    prob += pulp.lpSum(gpu.cost_usd_per_h * y[g] for g, gpu in enumerate(inst.gpus))
    for s in range(len(slices)):
        prob += pulp.lpSum(v for (t, _), v in x.items() if t == s) == 1  # C1
    for g, gpu in enumerate(inst.gpus):
        prob += (  # C2
            pulp.lpSum(
                v * (1 / gpu.tputs[slices[s][0]][slices[s][1]]) * slices[s][2]
                for (s, h), v in x.items()
                if h == g
            )
            <= y[g]
        )
    with warnings.catch_warnings():  # PULP_CBC_CMD is deprecated for PuLP 4 (Python 3.12)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pulp")
        prob.solve(pulp.PULP_CBC_CMD(msg=0))
    assert pulp.LpStatus[prob.status] == "Optimal"
    counts = {gpu.name: int(round(y[g].value())) for g, gpu in enumerate(inst.gpus)}
    where = [
        next(inst.gpus[g].name for (t, g), v in x.items() if t == s and v.value() > 0.5)
        for s in range(len(slices))
    ]
    cost = sum(counts[gpu.name] * gpu.cost_usd_per_h for gpu in inst.gpus)
    return cost, counts, where


def random_melange(seed: int) -> tuple[MelangeInstance, int]:
    """A Mélange-style instance: 2-4 GPU types at 0.5-5 $/h, a 2x2 to 3x3 bucket grid (some
    shares 0), throughputs 0.5-50 req/s with about one in five 0 but every bucket servable,
    5-60 req/s, and a slice factor from {1, 2, 4}. Data have two decimals, as profiles do."""
    rng = np.random.default_rng(seed)
    rows, cols = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    n_gpu = int(rng.integers(2, 5))
    shares = rng.dirichlet(np.ones(rows * cols)).round(3)
    shares[rng.random(rows * cols) < 0.1] = 0.0
    shares[-1] = 0.0
    shares[-1] = round(1.0 - shares.sum(), 3)
    if shares[-1] < 0:  # rounding ate more than the last share: renormalise
        shares = np.maximum(shares, 0.0)
        shares[-1] = 0.0
        shares[-1] = 1.0 - shares.sum()
    tputs = rng.uniform(0.5, 50, (n_gpu, rows, cols)).round(2)
    tputs[rng.random(tputs.shape) < 0.2] = 0.0
    for i in range(rows):
        for j in range(cols):
            if not (tputs[:, i, j] > 0).any():
                tputs[int(rng.integers(n_gpu)), i, j] = round(float(rng.uniform(0.5, 50)), 2)
    data = {
        "workload_distribution": shares.reshape(rows, cols).tolist(),
        "gpu_info": {
            f"G{g}": {"cost": round(float(rng.uniform(0.5, 5)), 2), "tputs": tputs[g].tolist()}
            for g in range(n_gpu)
        },
        "total_request_rate": round(float(rng.uniform(5, 60)), 1),
        "slice_factor": int(rng.choice([1, 2, 4])),
    }
    return melange_instance(data, f"random{seed}"), int(data["slice_factor"])


def _pool_loads(inst: MelangeInstance, slice_factor: int, where: list[str]) -> list[float]:
    """Summed ``rate / throughput`` per GPU type of a plan given slice by slice (all buckets,
    Mélange's order)."""
    load = dict.fromkeys(inst.gpu_names, 0.0)
    tputs = {g.name: g.tputs for g in inst.gpus}
    k = 0
    for _, i, j, share in inst.buckets():
        for _ in range(slice_factor):
            if share > 0:
                load[where[k]] += (
                    share * inst.total_request_rate / slice_factor / tputs[where[k]][i][j]
                )
            k += 1
    return list(load.values())


def _near_integer_from_above(loads: list[float]) -> bool:
    """A pool filled less than 1e-6 above a whole number of GPUs (but more than 1e-9, the
    planner's float allowance): solvers with different tolerances may size it differently."""
    return any(1e-9 < v - math.floor(v) < 1e-6 for v in loads)


SEEDS = range(36)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_instances_match_the_reference_ilp(seed: int) -> None:
    """hetopt's optimum equals Mélange's ILP (re-implemented above, solved by CBC) within
    1e-6 $/h on HiGHS, CBC and CP-SAT (and brute force where it can enumerate).

    Why CP-SAT can equal it exactly: CP-SAT works on integers. The backend first solves a
    relaxed model (loads rounded down to 1e-9 replica steps, costs down to 1e-12 $/h), checks
    its plan with the exact evaluation (``ceil(load - 1e-9)`` GPUs per type), and only if that
    fails asks the conservative model (loads rounded up to 1e-6 replica steps) for a plan. So
    CP-SAT's plan and proof can differ from the exact optimum only when some GPU type is
    filled to within about 1e-6 of a whole number of GPUs. CBC in the reference has tolerances
    of its own (1e-7 primal, 1e-6 integrality), so it too may size such a pool one GPU apart
    from hetopt (Mélange's ``int(y.value())`` would even truncate 2.9999999 to 2). The
    instances' data have two decimals and no such near-integer fill: the test asserts that for
    the reference's plan and each of hetopt's (an exact whole number, e.g. 3.0, sizes the same
    everywhere), compares costs with an absolute tolerance of 1e-6, and checks that each plan is
    feasible: hetopt's verified by the oracle, the reference's recomputed by the oracle at
    the reference's cost.
    """
    inst, s = random_melange(seed)
    ref_cost, ref_counts, ref_where = reference_melange(inst, s)
    assert not _near_integer_from_above(_pool_loads(inst, s, ref_where)), "pick another seed"
    problem = melange_problem(inst, s)
    assert problem.raw_inputs is not None
    # The reference's plan is a plan of hetopt's problem, at the reference's cost.
    ref_assignment = {}
    k = 0
    for name, _, _, share in inst.buckets():
        for slice_ in range(s):
            if share > 0:
                ref_assignment[f"{name}/s{slice_}"] = (ref_where[k], "replica")
            k += 1
    rec = evaluate_assignment(
        problem.raw_inputs,
        ref_assignment,
        pool_counts={},
        llm_pool_counts={g: n for g, n in ref_counts.items() if n},
    )
    assert rec.feasible and rec.tco_usd_per_h == pytest.approx(ref_cost, abs=1e-6)
    backends = list(MILP_BACKENDS)
    if math.prod(len(problem.options_of(i)) for i in range(problem.n_ops)) <= 4096:
        backends.append("bruteforce")
    for backend in backends:
        res = plan_melange(inst, SolverOptions(backend=backend), s)
        assert res.proven_optimal and res.verified, (backend, res.verification)
        assert len(res.assignment) == problem.n_ops
        loads = [res.gpu_load[g] for g in inst.gpu_names]
        assert not _near_integer_from_above(loads), "pick another seed"
        assert res.cost_usd_per_h == pytest.approx(ref_cost, abs=1e-6), (backend, seed)


# --- Bad inputs ---------------------------------------------------------------------------------


def _example() -> dict[str, Any]:
    return json.loads(json.dumps(MELANGE_EXAMPLE))


def _mutated(change: Any) -> dict[str, Any]:
    data = _example()
    change(data)
    return data


BAD: list[tuple[str, Any, str]] = [
    ("missing gpu_info", _mutated(lambda d: d.pop("gpu_info")), "key 'gpu_info' is missing"),
    (
        "missing distribution",
        _mutated(lambda d: d.pop("workload_distribution")),
        "key 'workload_distribution' is missing",
    ),
    (
        "missing rate",
        _mutated(lambda d: d.pop("total_request_rate")),
        "key 'total_request_rate' is missing",
    ),
    ("unknown key", _mutated(lambda d: d.update(slice_factr=4)), "key 'slice_factr' is not one"),
    (
        "shares sum 0.9",
        _mutated(lambda d: d.update(workload_distribution=[[0.2, 0.1], [0.4, 0.2]])),
        "workload_distribution sums to 0.9, not 1",
    ),
    (
        "shares sum 1 + 1e-5",
        _mutated(lambda d: d.update(workload_distribution=[[0.2, 0.1], [0.50001, 0.2]])),
        "sums to 1.00001, not 1",
    ),
    (
        "negative share",
        _mutated(lambda d: d.update(workload_distribution=[[0.4, -0.1], [0.5, 0.2]])),
        "workload_distribution[0][1] is negative",
    ),
    (
        "string share",
        _mutated(lambda d: d.update(workload_distribution=[[0.2, "0.1"], [0.5, 0.2]])),
        "workload_distribution[0][1] is a string",
    ),
    (
        "boolean share",
        _mutated(lambda d: d.update(workload_distribution=[[0.2, True], [0.5, 0.2]])),
        "is a boolean",
    ),
    (
        "ragged distribution",
        _mutated(lambda d: d.update(workload_distribution=[[0.3, 0.2], [0.5]])),
        "workload_distribution[1] has 1 entries where row 0 has 2",
    ),
    (
        "flat distribution",
        _mutated(lambda d: d.update(workload_distribution=[0.5, 0.5])),
        "not a non-empty 2-D list",
    ),
    (
        "tputs shape",
        _mutated(lambda d: d["gpu_info"]["A10G"].update(tputs=[[2, 1]])),
        "gpu_info.A10G.tputs is 1 x 2 but workload_distribution is 2 x 2",
    ),
    (
        "negative tput",
        _mutated(lambda d: d["gpu_info"]["A10G"].update(tputs=[[2, -1], [5, 2]])),
        "gpu_info.A10G.tputs[0][1] is negative",
    ),
    (
        "negative cost",
        _mutated(lambda d: d["gpu_info"]["A10G"].update(cost=-1.01)),
        "gpu_info.A10G.cost is negative",
    ),
    (
        "string cost",
        _mutated(lambda d: d["gpu_info"]["A10G"].update(cost="1.01")),
        "gpu_info.A10G.cost is a string",
    ),
    (
        "missing tputs",
        _mutated(lambda d: d["gpu_info"]["A10G"].pop("tputs")),
        "gpu_info.A10G.tputs is missing",
    ),
    ("gpu_info list", _mutated(lambda d: d.update(gpu_info=[{"name": "A10G"}])), "not a list"),
    ("gpu_info empty", _mutated(lambda d: d.update(gpu_info={})), "gpu_info is empty"),
    ("rate zero", _mutated(lambda d: d.update(total_request_rate=0)), "total_request_rate is 0"),
    (
        "rate negative",
        _mutated(lambda d: d.update(total_request_rate=-30)),
        "total_request_rate is negative",
    ),
    (
        "unservable bucket",
        _mutated(lambda d: [d["gpu_info"][g]["tputs"][1].__setitem__(1, 0) for g in d["gpu_info"]]),
        "no GPU can serve it",
    ),
    ("slice factor 0", _mutated(lambda d: d.update(slice_factor=0)), "slice_factor is 0"),
    ("slice factor 2.5", _mutated(lambda d: d.update(slice_factor=2.5)), "slice_factor is 2.5"),
    ("slice factor text", _mutated(lambda d: d.update(slice_factor="4")), "slice_factor is '4'"),
    ("top-level list", [MELANGE_EXAMPLE], "top level is a JSON array"),
    ("not JSON", "{'gpu_info': {}}", "is not valid JSON"),
    ("NaN", json.dumps(MELANGE_EXAMPLE).replace("30.0", "NaN"), "NaN is not a finite number"),
    (
        "repeated key",
        json.dumps(MELANGE_EXAMPLE)[:-1] + ', "slice_factor": 4}',
        "key 'slice_factor' appears twice",
    ),
]


@pytest.mark.parametrize(("data", "needle"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_paragraph_naming_file_and_key(
    tmp_path: Path, data: Any, needle: str
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(InputError) as info:
        load_melange(path)
    message = str(info.value)
    assert needle in message, message
    assert message.startswith(f"Mélange file {path}:") and "\n" not in message


def test_missing_file_and_slice_factor_default(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_melange(tmp_path / "nope.json")
    data = _example()
    data.pop("slice_factor")  # Mélange's runner takes 1 when the key is absent
    assert load_melange(_write(tmp_path, data)).slice_factor == 1


def test_zero_share_bucket_nobody_serves_is_fine(tmp_path: Path) -> None:
    data = _mutated(lambda d: d.update(workload_distribution=[[0.3, 0.0], [0.5, 0.2]]))
    for g in data["gpu_info"].values():
        g["tputs"][0][1] = 0
    res = plan_melange(load_melange(_write(tmp_path, data)))
    assert set(res.split) == {"b0x0", "b1x0", "b1x1"} and res.verified


# --- The command ----------------------------------------------------------------------------------


def test_cli_prints_the_plan_table_and_verification(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["melange", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert " 3 " in lines["A10G"] and "3.03" in lines["A10G"]
    assert " 1 " in lines["A100-80GB"] and "3.67" in lines["A100-80GB"]
    assert {"b0x0", "b0x1", "b1x0", "b1x1"} <= set(lines)
    assert "Total cost 6.70 $/h" in out
    assert '{"A10G": 3, "A100-80GB": 1, "cost": 6.7}' in out
    assert "highs: proven optimal" in out
    assert "Independent verification passed" in out


@pytest.mark.parametrize("backend", MILP_BACKENDS)
def test_cli_overrides_slice_factor_and_solver(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    assert main(["melange", str(EXAMPLE), "slice_factor=4", f"solver={backend}"]) == 0
    out = capsys.readouterr().out
    assert "slice_factor 4" in out and "Total cost 5.69 $/h" in out
    assert f"{backend}: proven optimal" in out
    assert '"A10G": 2' in out and "Independent verification passed" in out


def test_cli_help_and_top_level_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["melange", "--help"]) == 0
    assert "usage: hetopt melange <file.json>" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "melange" in capsys.readouterr().out


CLI_ERRORS = [
    (["melange"], "takes one Mélange input file, got 0"),
    (["melange", "a.json", "b.json"], "got 2"),
    (["melange", "{EXAMPLE}", "sla.e2e_s=3"], "does not use 'sla.e2e_s=3'"),
    (["melange", "{EXAMPLE}", "slice_factor=four"], "is not an integer"),
    (["melange", "{EXAMPLE}", "slice_factor=0"], "slice_factor=0 is not an integer >= 1"),
    (["melange", "{EXAMPLE}", "solver=gurobi"], "Unknown solver backend"),
    (["melange", "{EXAMPLE}", "solver.time_limit_s=0"], "time_limit_s must be > 0"),
    (["melange", "{EXAMPLE}", "solver.verbose=maybe"], "true or false"),
    (["melange", "{EXAMPLE}", "slice_factor=8", "solver=bruteforce"], "would enumerate"),
    (["melange", "{MISSING}"], "does not exist"),
    (["melange", "{BAD}"], "workload_distribution sums to 0.9"),
]


@pytest.mark.parametrize(("args", "needle"), CLI_ERRORS)
def test_cli_errors_exit_2_with_one_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    bad = _write(
        tmp_path, _mutated(lambda d: d.update(workload_distribution=[[0.2, 0.1], [0.4, 0.2]]))
    )
    paths = {"{EXAMPLE}": str(EXAMPLE), "{MISSING}": str(tmp_path / "nope.json"), "{BAD}": str(bad)}
    code = main([paths.get(a, a) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in " ".join(err.split()), err
    assert "Traceback" not in err and err.startswith("error:")


def test_cli_exit_1_when_verification_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hetopt.melange.plan as melange

    monkeypatch.setattr(melange, "_oracle_check", lambda *a: (0.0, ["oracle: planted"]))
    assert main(["melange", str(EXAMPLE)]) == 1
    assert "Independent verification FAILED: oracle: planted" in capsys.readouterr().out


def test_cli_exit_2_when_not_proven_optimal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A solve stopped at its limit still prints its plan, not called optimal."""
    import dataclasses

    import hetopt.melange.plan as melange

    real = melange.solve

    def stopped(problem: Any, options: Any) -> Any:
        res = real(problem, options)
        return dataclasses.replace(res, status=SolveStatus.FEASIBLE, bound=6.0, gap=0.1)

    monkeypatch.setattr(melange, "solve", stopped)
    assert main(["melange", str(EXAMPLE)]) == 2
    captured = capsys.readouterr()
    assert "best plan found, not proven optimal" in captured.out
    assert ": proven optimal" not in captured.out and "gap 10.00%" in captured.out
    assert "not proven optimal" in " ".join(captured.err.split())
