"""Byte-for-byte comparison of what mirage's commands write, before and after a change.

Two modes:

    python benchmarks/compare_outputs.py run OUT [--src SRC] [--only NAME ...]
    python benchmarks/compare_outputs.py diff A B

``run`` runs a fixed set of commands on fixed inputs (the bundled Pythia/OPT/BLOOM tables, a
synthetic record set this script draws itself with numpy, and the lm-eval, Inspect and BIG-bench
fixtures of the test suite) and keeps every file they write, plus each command's stdout, in
``OUT``. ``--src`` is the ``src`` directory whose mirage is run (default: this checkout's), so the
same script runs an older tree. Every command runs in the same scratch directory
(``/tmp/mirage-compare-run``), so absolute paths that outputs record (a model's directory, a task
file) are the same in every run; the results are then moved to ``OUT``.

``diff`` compares two such directories file by file: the same set of files, and the same bytes,
except for what legitimately differs from one run to the next. That, and only that, is ignored:

- wall-clock durations: ``seconds`` in ``vision/summary.json`` and in every trained model's
  ``training.json``; "seconds per experiment: {...}" in ``vision/report.html``; "took N s" in the
  demo's ``report.html``; "N s" durations in the commands' stdout, and the lines of rich progress
  bars there (they end in an elapsed time);
- what a model checkpoint's modification time feeds into: the record store hashes a local
  checkpoint by its files' sizes and mtimes (``checkpoint_fingerprint``), so in the demo's
  ``store/manifest.json`` the ``weights`` fingerprint and the ``config_hash`` derived from it,
  and in the store's shards the ``mirage_config_hash`` key of the Parquet schema metadata, differ
  between two trainings of the same weights. Shards are therefore compared as tables (the same
  rows, columns and values, and the same schema metadata but that key) instead of as bytes;
- where the mirage package lives: ``demo --bundled`` reads the tables shipped inside the package,
  so its ``summary.json`` lists their absolute paths under ``--src``; each run's ``--src`` (kept
  in ``OUT/_src``) is replaced by ``<SRC>`` in the text files before comparing;
- stderr (progress bars) is not kept.

Exit status 0 when the two directories agree, 1 otherwise (each difference printed on a line).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
SCRATCH = Path("/tmp/mirage-compare-run")
CONFIG_HASH_KEY = b"mirage_config_hash"

# name -> the command's arguments (run from the scratch directory, inputs under ./inputs)
COMMANDS: dict[str, list[str]] = {
    "analyze_bundled": [
        "analyze",
        "inputs/pythia_scaling.csv",
        "inputs/opt_bloom_scaling.csv",
        "--out",
        "analyze_bundled",
    ],
    "analyze_records": [
        "analyze",
        "inputs/records.parquet",
        "--bootstrap",
        "300",
        "--seed",
        "3",
        "--out",
        "analyze_records",
    ],
    "analyze_lm_eval": ["analyze", "inputs/lm_eval_04/out", "--out", "analyze_lm_eval"],
    "analyze_inspect": [
        "analyze",
        "inputs/inspect/logs",
        "--family",
        "mock",
        "--scale-from",
        "inputs/inspect/models.csv",
        "--out",
        "analyze_inspect",
    ],
    "analyze_bigbench": ["analyze", "inputs/bigbench_logs", "--out", "analyze_bigbench"],
    "meta_bundled": [
        "meta",
        "inputs/pythia_scaling.csv",
        "inputs/opt_bloom_scaling.csv",
        "inputs/records.parquet",
        "--out",
        "meta_bundled",
    ],
    "meta_bigbench": ["meta", "inputs/bigbench_logs", "inputs/bigbench_results", "--out", "meta_bigbench"],
    "theory": ["theory", "--out", "theory"],
    "theory_options": [
        "theory",
        "--c",
        "1e9",
        "--alpha",
        "-0.3",
        "--lengths",
        "1,3,8",
        "--choices",
        "4",
        "--points",
        "50",
        "--emergence-models",
        "6",
        "--out",
        "theory_options",
    ],
    "vision": ["vision", "--quick", "--out", "vision"],
    "demo_bundled": ["demo", "--bundled", "--out", "demo_bundled"],
    "demo": ["demo", "--quick", "--out", "demo"],
}


# ----------------------------------------------------------------------------- inputs


def synthetic_records(path: Path) -> None:
    """A record set with a known truth, drawn here with numpy only (no mirage code): two families of
    six models, generation (targets of 1-5 digits) and 4-way multiple choice from the same outputs;
    one family's per-token probability follows a power law, the other's jumps."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(20240601)
    scales = np.geomspace(1e6, 1e10, 6)
    families = {
        "smooth": np.exp(-((scales / 2e9) ** -0.35)),
        "jumpy": np.array([0.03, 0.04, 0.05, 0.9, 0.93, 0.96]),
    }
    rows: dict[str, list] = {
        k: []
        for k in (
            "family",
            "model",
            "scale",
            "task",
            "sample_id",
            "prompt",
            "target",
            "output",
            "target_tokens",
            "output_tokens",
            "target_logprobs",
            "choices",
            "choice_logprobs",
            "choice_lengths",
            "correct_choice",
        )
    }
    digits = np.array(list("0123456789"))
    for fam, ps in families.items():
        targets = [rng.choice(digits, size=1 + i % 5) for i in range(120)]
        for m, (scale, p) in enumerate(zip(scales, ps)):
            for i, tgt in enumerate(targets):
                n = len(tgt)
                right = rng.random(n) < p
                out = np.where(right, tgt, ((tgt.astype(int) + rng.integers(1, 10, n)) % 10).astype(str))
                lp = np.minimum(np.log(p) + rng.normal(0, 0.05, n), -1e-6)
                correct = int(rng.integers(4))
                wrong = float(n * np.log(max(1 - p, 1e-9) / 3))
                rows["family"].append(fam)
                rows["model"].append(f"{fam}-{m}")
                rows["scale"].append(float(scale))
                rows["task"].append("digits")
                rows["sample_id"].append(str(i))
                rows["prompt"].append(f"Q{i}:")
                rows["target"].append("".join(tgt))
                rows["output"].append("".join(out))
                rows["target_tokens"].append(list(tgt))
                rows["output_tokens"].append(list(out))
                rows["target_logprobs"].append(lp.tolist())
                rows["choices"].append([f"c{k}" for k in range(4)])
                rows["choice_logprobs"].append(
                    [float(lp.sum()) if k == correct else wrong + float(rng.normal(0, 0.1)) for k in range(4)]
                )
                rows["choice_lengths"].append([n] * 4)
                rows["correct_choice"].append(correct)
    pq.write_table(pa.table(rows), path)


def prepare_inputs(inputs: Path, src: Path) -> None:
    inputs.mkdir(parents=True)
    for name in ("pythia_scaling.csv", "opt_bloom_scaling.csv"):
        shutil.copy(src / "mirage" / "data" / name, inputs / name)
    for name in ("lm_eval_04", "inspect", "bigbench_logs", "bigbench_results"):
        shutil.copytree(FIXTURES / name, inputs / name, ignore=shutil.ignore_patterns("*.py", "README.md"))
    synthetic_records(inputs / "records.parquet")


# ----------------------------------------------------------------------------- run


def run(out: Path, src: Path, only: list[str]) -> None:
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new directory")
    if SCRATCH.exists():
        shutil.rmtree(SCRATCH)
    SCRATCH.mkdir(parents=True)
    prepare_inputs(SCRATCH / "inputs", src)
    env = dict(
        os.environ,
        PYTHONPATH=str(src),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    for name, args in COMMANDS.items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "mirage.cli", *args],
            cwd=SCRATCH,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        print(f"{name}: exit {proc.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
        (SCRATCH / f"{name}.stdout").write_text(proc.stdout, encoding="utf-8")
    shutil.rmtree(SCRATCH / "inputs")
    (SCRATCH / "_src").write_text(str(src), encoding="utf-8")
    shutil.move(str(SCRATCH), str(out))


# ----------------------------------------------------------------------------- diff

_DURATION = re.compile(r"\b\d+(?:\.\d+)? s\b")


def _text(data: bytes) -> str:
    return data.decode("utf-8")


def _json_without(*paths: tuple[str, ...]) -> Callable[[bytes], str]:
    """JSON with the keys at ``paths`` removed (``*`` matches every key of an object)."""

    def drop(obj: object, path: tuple[str, ...]) -> None:
        if not path or not isinstance(obj, dict):
            return
        head, rest = path[0], path[1:]
        keys = list(obj) if head == "*" else [head]
        for key in keys:
            if key not in obj:
                continue
            if rest:
                drop(obj[key], rest)
            else:
                del obj[key]

    def norm(data: bytes) -> str:
        obj = json.loads(data)
        for path in paths:
            drop(obj, path)
        return json.dumps(obj, indent=1, sort_keys=True)

    return norm


def _sub(pattern: str, repl: str) -> Callable[[bytes], str]:
    rx = re.compile(pattern)
    return lambda data: rx.sub(repl, _text(data))


def _stdout(data: bytes) -> str:
    # rich progress bars (a figure count and an elapsed time) are drawn on stdout: left out
    lines = [line for line in _text(data).splitlines() if "\u2501" not in line]
    return _DURATION.sub("<N> s", "\n".join(lines))


def _shard(path: Path) -> str:
    """A record shard as its rows and its schema metadata without the config hash."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != CONFIG_HASH_KEY}
    return repr(meta) + "\n" + repr(table.replace_schema_metadata(None).to_pydict())


# (glob over the path relative to the output directory, normaliser, what it ignores)
RULES: list[tuple[str, Callable[[bytes], str], str]] = [
    ("*/training.json", _json_without(("seconds",)), "training wall time"),
    ("vision/summary.json", _json_without(("seconds",)), "seconds per experiment"),
    (
        "vision/report.html",
        _sub(r"seconds per experiment: \{[^}]*\}", "seconds per experiment: <N>"),
        "seconds per experiment",
    ),
    ("demo/report.html", _sub(r"took \d+ s", "took <N> s"), "the demo's wall time"),
    (
        "demo/store/manifest.json",
        _json_without(("shards", "*", "config", "weights"), ("shards", "*", "config_hash")),
        "checkpoint mtimes in the weights fingerprint and the config hash",
    ),
    ("*.stdout", _stdout, "durations"),
]


def _is_shard(rel: str) -> bool:
    return rel.startswith("demo/store/") and rel.endswith(".parquet") and "/mirage-work/" not in rel


def _normalised(rel: str, path: Path, src: bytes) -> tuple[str | bytes, str]:
    if _is_shard(rel):
        return _shard(path), "config hash in the schema metadata"
    data = path.read_bytes()
    why = ""
    if src and src in data and path.suffix in (".json", ".csv", ".html", ".stdout"):
        data, why = data.replace(src, b"<SRC>"), "the package's location"
    for pattern, norm, reason in RULES:
        if Path(rel).match(pattern):
            return norm(data), "; ".join(filter(None, (why, reason)))
    return data, why


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def diff(a: Path, b: Path) -> int:
    fa, fb = files(a) - {"_src"}, files(b) - {"_src"}
    src_a = (a / "_src").read_bytes() if (a / "_src").is_file() else b""
    src_b = (b / "_src").read_bytes() if (b / "_src").is_file() else b""
    problems = [f"only in {a}: {f}" for f in sorted(fa - fb)] + [f"only in {b}: {f}" for f in sorted(fb - fa)]
    ignored: dict[str, int] = {}
    for rel in sorted(fa & fb):
        va, why = _normalised(rel, a / rel, src_a)
        vb, _ = _normalised(rel, b / rel, src_b)
        if why:
            ignored[why] = ignored.get(why, 0) + 1
        if va == vb:
            continue
        if isinstance(va, str) and isinstance(vb, str):
            lines = list(difflib.unified_diff(va.splitlines(), vb.splitlines(), lineterm="", n=0))[2:8]
            problems.append(f"differs: {rel}\n    " + "\n    ".join(line[:200] for line in lines))
        else:
            problems.append(f"differs: {rel} ({len(va)} vs {len(vb)} bytes)")
    for line in problems:
        print(line)
    n_same = len(fa & fb) - sum(1 for p in problems if p.startswith("differs"))
    print(
        f"{len(fa & fb)} files in both, {n_same} identical"
        + (
            f" ({sum(ignored.values())} after ignoring: " + "; ".join(f"{k} in {v}" for k, v in ignored.items()) + ")"
            if ignored
            else ""
        )
        + f"; {len(problems)} difference(s)"
    )
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run", help="run every command into OUT")
    r.add_argument("out", type=Path)
    r.add_argument("--src", type=Path, default=REPO / "src", help="the src directory whose mirage is run")
    r.add_argument("--only", nargs="*", default=[], choices=sorted(COMMANDS), help="run only these commands")
    d = sub.add_parser("diff", help="compare two directories written by run")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.mode == "run":
        run(args.out.resolve(), args.src.resolve(), args.only)
        return 0
    return diff(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
