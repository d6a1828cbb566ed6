"""mirage forecast: the smooth per-token law of smaller models, extrapolated, with a band and back-tests."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage import ForecastSettings, Inputs, bundled_path, read_inputs, run_forecast, write_records
from mirage.analysis.curves import collect_curves
from mirage.analysis.forecast import forecast_from_curves
from mirage.cli import app
from mirage.errors import MirageInputError
from mirage.schema.settings import AnalysisSettings
from mirage.schema.tables import BACKTESTS, FORECAST, FORECAST_CROSSINGS, FORECAST_FITS, check_table
from mirage.synthetic import TruthSpec, known_truth_records

runner = CliRunner()


def _forecast(spec, **settings):
    res = run_forecast(Inputs(None, known_truth_records(spec)), ForecastSettings(bootstrap=120, **settings))
    for table, spec_ in (
        (res.forecast, FORECAST),
        (res.crossings, FORECAST_CROSSINGS),
        (res.fits, FORECAST_FITS),
        (res.backtests, BACKTESTS),
    ):
        assert check_table(table, spec_) == [], spec_.name  # every table as its spec says
    return res


def test_smooth_law_forecasts_the_held_out_models_and_the_crossing():
    spec = TruthSpec("smooth", n_models=12, decades=4, lengths=(5,), n_samples=1000, top_p=0.93, seed=3)
    res = _forecast(spec, backtest=4, to=(1e12,))
    fit = res.fits.iloc[0]
    assert fit["status"] == "forecast" and fit["alpha"] == pytest.approx(-0.5, abs=0.05)
    bt = res.backtests
    assert len(bt) == 4 and bt["covered"].astype(bool).all(), bt.to_string()
    assert bt["crossing_ratio"].iloc[0] == pytest.approx(1.0, abs=0.3)
    level = res.crossings[res.crossings.crossing == "level"].iloc[0]
    assert level["scale_low"] <= level["scale"] <= level["scale_high"]
    extra = res.forecast[res.forecast.row_kind == "extrapolated"].iloc[0]
    assert extra["scale"] == 1e12 and extra["predicted_low"] <= extra["predicted"] <= extra["predicted_high"]


def test_forecast_is_deterministic_for_a_seed():
    spec = TruthSpec("smooth", n_models=8, decades=3, lengths=(4,), n_samples=300, seed=1)
    a, b = _forecast(spec, backtest=2, seed=5), _forecast(spec, backtest=2, seed=5)
    pd.testing.assert_frame_equal(a.forecast, b.forecast)
    pd.testing.assert_frame_equal(a.backtests, b.backtests)


def test_a_real_jump_after_the_split_shows_as_a_miss():
    # 12 models, the loss drops 6x between models 5 and 6; hold out the 6 largest: the smooth law of
    # the smaller ones cannot see it coming, and the back-test says so
    spec = TruthSpec("jump", n_models=12, decades=4, lengths=(4,), n_samples=1000, top_p=0.9, jump_factor=6.0, seed=2)
    res = _forecast(spec, backtest=6)
    assert res.fits.iloc[0]["status"] == "forecast"
    assert res.backtests["miss"].astype(bool).any()


def test_a_loss_threshold_is_flagged_unreliable():
    spec = TruthSpec(
        "threshold", n_models=12, decades=4, lengths=(4,), n_samples=1000, top_p=0.9, seed=4, threshold_p=0.5
    )
    res = _forecast(spec, backtest=4)
    fit = res.fits.iloc[0]
    assert fit["status"] == "unreliable" and "lag" in fit["reason"]
    assert res.backtests["miss"].astype(bool).any()


def test_no_usable_signal_declines_rather_than_printing_a_line():
    # every model at the floor and a loss that does not move: nothing to extrapolate
    spec = TruthSpec("smooth", n_models=6, decades=1, lengths=(8,), n_samples=300, alpha=-1e-4, top_p=0.3, seed=0)
    res = _forecast(spec)
    assert res.fits.iloc[0]["status"] == "declined"
    assert "no usable signal" in res.fits.iloc[0]["reason"]
    assert res.crossings.iloc[0]["note"].startswith("declined")


def test_multiple_choice_is_forecast_through_the_option_model():
    spec = TruthSpec("smooth_mc", n_models=12, decades=4, lengths=(4,), n_samples=1000, top_p=0.7, seed=5)
    res = _forecast(spec, backtest=4)
    assert res.fits.iloc[0]["metric"] == "multiple_choice_grade"
    assert res.backtests["covered"].astype(bool).mean() >= 0.75


def test_score_tables_forecast_with_an_effective_length():
    inputs = read_inputs([bundled_path("pythia_scaling.csv")], filters=["shots=0"])
    curves, samples, _ = collect_curves(inputs, AnalysisSettings(bootstrap=0))
    lam = curves[(curves.family == "Pythia") & (curves.task == "lambada_openai")]
    res = forecast_from_curves(lam, None, ForecastSettings(backtest=2, bootstrap=100))
    fit = res.fits.iloc[0]
    assert fit["metric"] == "acc" and fit["loss_metric"] == "ppl" and fit["transform"] == "effective length"
    assert len(res.backtests) == 2 and res.backtests["predicted"].notna().all()


def test_settings_are_checked():
    for bad, name in (
        (dict(level=1.5), "--level"),
        (dict(to=(-1.0,)), "--to"),
        (dict(bootstrap=3), "--bootstrap"),
        (dict(backtest=2, backtest_above=1e9), "--backtest"),
    ):
        with pytest.raises(MirageInputError, match=name):
            ForecastSettings(**bad)


def test_cli_writes_every_output_and_bad_input_is_one_line(tmp_path):
    rec = known_truth_records(
        TruthSpec("smooth", n_models=8, decades=4, lengths=(5,), n_samples=300, seed=1, top_p=0.93)
    )
    path = tmp_path / "records.parquet"
    write_records(rec, path)
    out = tmp_path / "fc"
    res = runner.invoke(
        app, ["forecast", str(path), "--to", "1e11,1e12", "--backtest", "2", "--bootstrap", "60", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    for name in (
        "forecast.csv",
        "crossings.csv",
        "forecast_fits.csv",
        "backtests.csv",
        "summary.json",
        "report.html",
        "figures/forecast.png",
    ):
        assert (out / name).is_file(), name
    assert "reaches 0.5 at" in res.stdout and json.loads((out / "summary.json").read_text())["backtest_points"] == 2
    for args, needle in ((["--to", "abc"], "--to"), (["--level", "2"], "--level")):
        bad = runner.invoke(app, ["forecast", str(path), "--out", str(tmp_path / "bad"), *args])
        assert bad.exit_code == 2 and needle in bad.output and "Traceback" not in bad.output
        assert not (tmp_path / "bad").exists()
    table = tmp_path / "scores.csv"
    pd.DataFrame(
        dict(family="f", model=["a", "b"], params=[1e6, 1e7], task="t", metric="acc", value=[0.1, 0.2])
    ).to_csv(table, index=False)
    bad = runner.invoke(app, ["forecast", str(table), "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "nothing to forecast" in bad.output


def test_cli_report_is_interactive_json_on_stdout_and_static_on_request(tmp_path):
    """One chart per forecast (hover data of every observed model, the band, the crossing), the
    summary as JSON with --json, and with --static the PNG page without plotly.js."""
    from mirage.report.interactive import plotly_js

    rec = known_truth_records(
        TruthSpec("smooth", n_models=8, decades=4, lengths=(5,), n_samples=300, seed=1, top_p=0.93)
    )
    path = tmp_path / "records.parquet"
    write_records(rec, path)
    args = ["forecast", str(path), "--backtest", "2", "--bootstrap", "40"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "fc"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # stdout is the JSON document alone
    assert summary["backtest_points"] == 2 and summary["report"].endswith("report.html")
    page = (tmp_path / "fc" / "report.html").read_text()
    assert page.count(plotly_js()[:300]) == 1 and page.count('<figure class="chart"') == summary["n_groups"]
    for needle in ('"name":"held out"', '"name":"observed (fit)"', '"fill":"toself"', 'id="search"'):
        assert needle in page, needle
    models = set(rec["model"])
    assert all(f'"{m}"' in page for m in models)  # every model is in some tooltip
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "st"), "--static", "--quiet"])
    assert res.exit_code == 0 and res.stdout.strip() == str(tmp_path / "st" / "report.html")
    static = (tmp_path / "st" / "report.html").read_text()
    assert "data:image/png;base64," in static and plotly_js()[:300] not in static
