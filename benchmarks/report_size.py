"""Size and write time of the interactive report against the static one, from 1 to 50 families.

The input is :func:`mirage.synthetic.many_families_table` (per family 3-4 models, 7 tasks, ``acc``
with stderr and n_samples and ``ppl``: the shape of ObsScaling's emergent-capability table, which
is not available offline). For each family count it analyses the table once, writes the report
interactive (default) and ``--static``, and prints the page sizes, the share that is plotly.js and
the median write time of each (``--repeats``), with the ratio interactive / static.

    python benchmarks/report_size.py [--families 1,10,25,50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mirage import AnalysisSettings, inputs_from_frame, run_analysis, write_analysis
from mirage.report.interactive import plotly_js
from mirage.synthetic import many_families_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="1,10,25,50")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    js = len(plotly_js().encode("utf-8"))
    print(f"plotly.js inlined once per page: {js / 1e6:.2f} MB")
    print("families  models  interactive MB  (plotly.js share)  static MB  write s interactive  static  ratio")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in args.families.split(",")):
            table = many_families_table(n)
            result = run_analysis(inputs_from_frame(table), AnalysisSettings(bootstrap=0))
            sizes, times = {}, {}
            for static in (False, True):
                seconds = []
                for r in range(args.repeats):
                    out = Path(tmp) / f"{n}-{static}-{r}"
                    start = time.perf_counter()
                    write_analysis(result, out, static=static)
                    seconds.append(time.perf_counter() - start)
                sizes[static] = (out / "report.html").stat().st_size
                times[static] = statistics.median(seconds)
            print(
                f"{n:8d}  {table['model'].nunique():6d}  {sizes[False] / 1e6:14.2f}  ({js / sizes[False]:16.0%})"
                f"  {sizes[True] / 1e6:9.2f}  {times[False]:19.1f}  {times[True]:6.1f}  {times[False] / times[True]:5.2f}"
            )


if __name__ == "__main__":
    main()
