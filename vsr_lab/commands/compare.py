"""`compare`: the comparison table and plots of runs read back from MLflow (vsr_lab.reporting)."""

from __future__ import annotations

from pathlib import Path

from vsr_lab.commands.common import metric_list


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="comparison table and plots of runs read back from MLflow")
    p.add_argument("--experiment", required=True, help="MLflow experiment name")
    p.add_argument("--runs", nargs="+", help="run ids (default: all finished runs of the experiment)")
    p.add_argument("--parent", help="only the children of this ablation/study (name) or parent run id")
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store (default: %(default)s)")
    p.add_argument("--reference", help="config the others are compared to (default: full, else the first)")
    p.add_argument("--out", help="write runs.csv, comparison.csv/.md/.png (and perception_distortion.png, curves.png) here")
    p.add_argument("--objectives", help="validation metrics for a Pareto front over the configs, comma-separated")
    p.add_argument("--curves", help="validation metrics to plot against training batches (curves.png in --out), "
                                    "comma-separated, e.g. val/psnr,val/ewarp; prints where each config peaks")
    p.set_defaults(func=run)


def run(args) -> int:
    import tempfile

    from vsr_lab.reporting import comparison
    from vsr_lab.tracking.runs import load_runs

    runs = load_runs(args.tracking_uri, args.experiment, args.runs or (), args.parent)
    print(runs.attrs["selection"])
    with tempfile.TemporaryDirectory() as tmp:
        summary = comparison.write_comparison(runs, args.out or tmp, args.reference, metric_list(args.objectives))
    print(comparison.markdown_table(summary), end="")
    curves = metric_list(args.curves)
    if curves:
        from vsr_lab.reporting.curves import curves_figure, peak_lines
        from vsr_lab.tracking.runs import metric_histories

        histories = {m: metric_histories(args.tracking_uri, runs["run_id"], m) for m in curves}
        for metric in curves:
            print("\n".join(peak_lines(runs, histories[metric], metric)))
        if args.out:
            curves_figure(runs, histories, curves).savefig(Path(args.out) / "curves.png", dpi=110)
    if args.out:
        print(f"tables and plots in {args.out}")
    return 0
