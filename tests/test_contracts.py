"""The output contract: every table every command writes keeps its spec (mirage.schema.tables).

In the spirit of scikit-learn's ``parametrize_with_checks``: each *producer* (a real command run
on real or synthetic inputs) is paired with the *specs* of the tables it writes, and every pair
is one test that reads the written file back and checks its columns (names and order, the
``--curve-by`` columns in their place), each column's dtype, emptiness and vocabulary. A second
check per producer says that no table-like file is written that no spec declares. The README's
column tables are generated from the same specs (``markdown_columns``) and checked here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from mirage.cli import app
from mirage.io.bundled import bundled_path
from mirage.io.records import write_records
from mirage.schema import tables as T
from mirage.synthetic import power_law_p, synthetic_records

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


@dataclass(frozen=True)
class Producer:
    """A command run whose outputs are checked: the tables it must write, and its --curve-by."""

    name: str
    specs: tuple[T.TableSpec, ...]
    curve_by: tuple[str, ...] = ()
    slow: bool = False


PRODUCERS = (
    Producer("analyze_records", T.ANALYSIS_TABLES),
    Producer("analyze_scores_curve_by", (T.CURVES, T.EMERGENCE, T.VERDICTS, T.EVIDENCE), curve_by=("first_operand",)),
    Producer("analyze_bundled", (T.CURVES, T.EMERGENCE, T.VERDICTS, T.EVIDENCE)),
    Producer("theory", T.THEORY_TABLES),
    Producer("meta", T.META_TABLES),
    Producer("forecast", T.FORECAST_TABLES),
    Producer("vision", T.VISION_TABLES, slow=True),
    Producer("train_family", T.TRAIN_TABLES, slow=True),
)


def _invoke(*args: object) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def _records(path: Path, until_pass: int | None = None) -> Path:
    """Two synthetic families (one smooth, one with a jump) with shots, generation and multiple
    choice; with ``until_pass`` also the attempts of ``eval --until-pass`` (for pass_rates.csv)."""
    scales = np.geomspace(1e6, 1e9, 6)
    smooth = synthetic_records(
        power_law_p(scales, c=3e7, alpha=-0.4),
        n_samples=60,
        lengths=(1, 2, 3, 4),
        family="smooth",
        task="digits",
        seed=1,
        until_pass=until_pass,
    )
    jumpy = synthetic_records(
        dict(zip(scales, [0.05, 0.06, 0.07, 0.9, 0.93, 0.95])),
        n_samples=60,
        lengths=(1, 2, 3),
        family="jumpy",
        task="digits",
        seed=2,
        until_pass=until_pass,
    )
    table = pa.concat_tables([smooth, jumpy])
    write_records(table.append_column("shots", pa.array([2] * table.num_rows, type=pa.int64())), path)
    return path


def _per_operand_scores(path: Path) -> Path:
    """A score table with one curve per first operand (it needs --curve-by)."""
    rows = []
    for operand in (1, 2):
        for i, params in enumerate(np.geomspace(1e7, 1e10, 5)):
            acc = [0.0, 0.0, 0.01, 0.6, 0.9][i] if operand == 1 else [0.1, 0.2, 0.3, 0.4, 0.5][i]
            for metric, value in (("acc", acc), ("ppl", 40.0 / (i + 1) ** 1.5)):
                rows.append(
                    dict(
                        family="f",
                        model=f"m{i}",
                        params=params,
                        task="sums",
                        metric=metric,
                        value=value,
                        n_samples=400,
                        first_operand=operand,
                    )
                )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _run(name: str, root: Path) -> Path:
    out = root / "out"
    if name == "analyze_records":
        _invoke(
            "analyze",
            _records(root / "records.parquet", until_pass=50),
            "--bootstrap",
            50,
            "--max-figures",
            1,
            "--out",
            out,
            "-q",
        )
    elif name == "analyze_scores_curve_by":
        _invoke(
            "analyze",
            _per_operand_scores(root / "scores.csv"),
            "--curve-by",
            "first_operand",
            "--max-figures",
            1,
            "--out",
            out,
            "-q",
        )
    elif name == "analyze_bundled":
        _invoke(
            "analyze",
            bundled_path("pythia_scaling.csv"),
            "--filter",
            "task=lambada_openai",
            "--max-figures",
            1,
            "--out",
            out,
            "-q",
        )
    elif name == "theory":
        _invoke("theory", "--points", 20, "--lengths", "1,3", "--out", out, "-q")
    elif name == "meta":  # score files and full logs of BIG-bench (re-scored), and records
        _invoke(
            "meta",
            REPO / "tests" / "fixtures" / "bigbench_logs",
            _records(root / "records.parquet"),
            "--out",
            out,
            "-q",
        )
    elif name == "forecast":  # records with a back-test: every one of its tables
        _invoke(
            "forecast",
            _records(root / "records.parquet"),
            "--to",
            "1e10",
            "--backtest",
            2,
            "--bootstrap",
            40,
            "--out",
            out,
            "-q",
        )
    else:
        raise AssertionError(name)
    return out


@pytest.fixture(scope="module")
def produced() -> dict[str, Path]:
    """Each producer's output directory, run once per module on first use."""
    return {}


def _output(
    name: str, produced: dict[str, Path], request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    if name not in produced:
        if name == "vision":
            produced[name] = request.getfixturevalue("vision_quick_dir")
        elif name == "train_family":
            produced[name] = request.getfixturevalue("quick_family_dir")
        else:
            produced[name] = _run(name, tmp_path_factory.mktemp(name))
    return produced[name]


def _files(out: Path, spec: T.TableSpec) -> list[Path]:
    """The files of ``spec`` in ``out`` (one per trained model for a training log)."""
    if spec is T.TRAIN_LOG:
        return sorted(out.glob(f"*/{spec.file}"))
    return [out / spec.file]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


CASES = [
    pytest.param(p, spec, id=f"{p.name}:{spec.file}", marks=[pytest.mark.slow] if p.slow else [])
    for p in PRODUCERS
    for spec in p.specs
]


@pytest.mark.parametrize("producer, spec", CASES)
def test_written_table_keeps_its_spec(producer, spec, produced, request, tmp_path_factory):
    out = _output(producer.name, produced, request, tmp_path_factory)
    files = _files(out, spec)
    assert files and all(f.is_file() for f in files), f"{producer.name} wrote no {spec.file}"
    for path in files:
        frame = _read(path)
        assert len(frame), f"{path} is empty"
        problems = T.check_table(frame, spec, producer.curve_by)
        assert not problems, f"{path.relative_to(out)}:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "producer", [pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.slow else []) for p in PRODUCERS]
)
def test_every_table_written_has_a_spec(producer, produced, request, tmp_path_factory):
    out = _output(producer.name, produced, request, tmp_path_factory)
    declared = {spec.file for spec in producer.specs}
    written = {p.name for p in out.rglob("*") if p.suffix in (".csv", ".parquet") and p.is_file()}
    assert written <= declared, f"{producer.name} writes tables no spec declares: {sorted(written - declared)}"
    summary = out / T.SUMMARY_FILE
    if producer.name.startswith("analyze") and summary.is_file():
        short = json.loads(summary.read_text())["insufficient_curves"]
        if isinstance(short, list) and short:
            assert not T.check_table(pd.DataFrame(short), T.INSUFFICIENT, producer.curve_by)


def test_the_check_finds_what_breaks_a_contract():
    """Not vacuous: a missing column, one out of order, an undeclared one, a wrong dtype, an empty
    value where none is allowed and a value outside the vocabulary are each reported."""
    good = pd.DataFrame({"length": [1, 3], "params_at_accuracy_0.5": [1e9, 2e9], "params_at_accuracy_0.1": [5e8, 9e8]})
    assert T.check_table(good, T.CROSSINGS) == []
    assert T.check_table(good.drop(columns="length"), T.CROSSINGS)
    assert T.check_table(good[good.columns[::-1]], T.CROSSINGS)
    assert T.check_table(good.assign(extra=1), T.CROSSINGS)
    assert T.check_table(good.assign(length=[1.5, 3]), T.CROSSINGS)
    assert T.check_table(good.assign(length=[None, 3]), T.CROSSINGS)
    runs = pd.DataFrame({"step": [1], "loss": [0.5], "tokens": [10]})
    assert T.check_table(runs, T.TRAIN_LOG) == []
    row = {
        c.name: (
            1.0
            if c.dtype == T.FLOAT
            else 1
            if c.dtype == T.INTEGER
            else True
            if c.dtype == T.BOOLEAN
            else (c.values[0] if c.values else "x")
        )
        for c in T.VERDICTS.columns
    }
    frame = pd.DataFrame([row])
    assert T.check_table(frame, T.VERDICTS) == []
    assert T.check_table(frame.assign(verdict="smooth"), T.VERDICTS)
    assert T.check_table(frame.assign(transform_check="pass"), T.VERDICTS)


README_START, README_END = "<!-- output-tables:start -->", "<!-- output-tables:end -->"


def test_readme_column_tables_are_the_specs():
    """The README's "Output tables" section is generated from the specs:
    ``python -c "from mirage.schema.tables import readme_tables; print(readme_tables())"``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert README_START in text and README_END in text
    section = text.split(README_START)[1].split(README_END)[0].strip()
    assert section == T.readme_tables().strip(), "regenerate the README section from the specs (see the docstring)"
