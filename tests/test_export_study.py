"""The pure parts of ``xorch export``, with tables of cases: a config flattened into
dotted keys, the keys variants change (the hparams), a run's metric series (curve
plus final value), W&B's history rows, MLflow's param names and the stable keys."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest

from orchestrator.commands.export_study import (
    MetricSeries,
    changed_keys,
    flatten,
    metric_points,
    study_key,
)
from orchestrator.state import StudyState

NAN = float("nan")


@pytest.mark.parametrize(
    ("config", "flat"),
    [
        ({}, {}),
        ({"a": 1}, {"a": 1}),
        ({"a": {"b": {"c": 2}, "d": [1, 2]}}, {"a.b.c": 2, "a.d": [1, 2]}),
        ({"a": {}}, {"a": {}}),  # an empty block stays one value, not nothing
        ({"x": None, "y": {"z": "s"}}, {"x": None, "y.z": "s"}),
    ],
)
def test_flatten(config: dict, flat: dict) -> None:
    assert flatten(config) == flat


@pytest.mark.parametrize(
    ("variants", "changed"),
    [
        ({}, ()),
        ({"only": {"a": 1}}, ()),
        ({"base": {"a": 1, "b": 2}, "wide": {"a": 1, "b": 3}}, ("b",)),
        ({"base": {"m": {"lr": 0.1}}, "x": {"m": {"lr": 0.1, "h": 4}}}, ("m.h",)),
        ({"a": {"k": [1, 2]}, "b": {"k": [1, 2]}, "c": {"k": [2, 1]}}, ("k",)),
        ({"a": {"k": 1, "j": "s"}, "b": {"k": 1, "j": "s"}}, ()),
        ({"a": {"k": None}, "b": {}}, ("k",)),  # None where the other has no key: changed
    ],
)
def test_changed_keys(variants: dict, changed: tuple[str, ...]) -> None:
    assert changed_keys(variants) == changed


def frame(rows: dict[int, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


@pytest.mark.parametrize(
    ("epochs", "final", "series"),
    [
        # no curve: the final values at step 0
        (pd.DataFrame(), {"b": 2.0, "a": 1.0}, {"a": ((0, 1.0),), "b": ((0, 2.0),)}),
        # the curve ends at the final value: nothing added
        (frame({0: {"l": 3.0}, 1: {"l": 2.0}}), {"l": 2.0},
         {"l": ((0, 3.0), (1, 2.0))}),
        # a final value that is not the last point (a best checkpoint's): added at the last epoch
        (frame({0: {"l": 3.0}, 1: {"l": 2.0}}), {"l": 2.5},
         {"l": ((0, 3.0), (1, 2.0), (1, 2.5))}),
        # a metric logged in some epochs only; a final metric without a curve
        (frame({0: {"l": 3.0, "v": NAN}, 1: {"l": 2.0, "v": 0.5}}), {"t": 0.9},
         {"l": ((0, 3.0), (1, 2.0)), "t": ((1, 0.9),), "v": ((1, 0.5),)}),
        # a run that failed: its curve, no final value
        (frame({0: {"l": 3.0}}), {}, {"l": ((0, 3.0),)}),
    ],
)  # fmt: skip
def test_metric_points(epochs: pd.DataFrame, final: dict, series: dict) -> None:
    assert metric_points(epochs, final) == tuple(MetricSeries(n, p) for n, p in series.items())


def test_a_nan_final_value_matches_a_nan_last_point() -> None:
    (one,) = metric_points(frame({0: {"l": 1.0}, 1: {"l": NAN}}).fillna(NAN), {"l": NAN})
    # the NaN epoch is no point of the curve, so the final NaN is added once at the last epoch
    assert one.points[0] == (0, 1.0) and one.points[1][0] == 1 and math.isnan(one.points[1][1])
    assert len(one.points) == 2


@pytest.mark.parametrize(
    ("series", "rows"),
    [
        ((), []),
        (
            (MetricSeries("a", ((0, 1.0), (1, 2.0))), MetricSeries("b", ((1, 5.0),))),
            [(0, {"a": 1.0}), (1, {"a": 2.0, "b": 5.0})],
        ),
        ((MetricSeries("a", ((2, 1.0), (0, 3.0))),), [(0, {"a": 3.0}), (2, {"a": 1.0})]),
    ],
)
def test_wandb_history_rows(series: tuple[MetricSeries, ...], rows: list) -> None:
    pytest.importorskip("wandb")
    from orchestrator.commands.export_wandb import epoch_rows

    assert epoch_rows(series) == rows


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("model.init_args.lr", "model.init_args.lr"),
        ("model.init_args.acts.2.*.do", "model.init_args.acts.2._.do"),
        ("callbacks[0]", "callbacks_0_"),
        ("a/b", "a/b"),
        ("a//b", "a__b"),  # no path MLflow accepts: no slash at all
        ("x/", "x_"),
        ("x" * 300, "x" * 250),
    ],
)
def test_mlflow_param_names(name: str, key: str) -> None:
    pytest.importorskip("mlflow")
    from orchestrator.commands.export_mlflow import param_key

    assert param_key(name) == key


def test_the_study_key_is_stable_and_tells_studies_apart() -> None:
    state = StudyState(config_fingerprint="f1", training_config={}, seeds=(1,), runs=(),
                       created_at="2026-12-06T10:00:00.000+00:00")  # fmt: skip
    assert study_key(state) == study_key(replace(state, seeds=(1, 2)))  # resume adds seeds
    assert study_key(state) != study_key(replace(state, config_fingerprint="f2"))
    assert study_key(state) != study_key(replace(state, created_at="2026-12-07T10:00:00+00:00"))
    assert len(study_key(state)) == 12
