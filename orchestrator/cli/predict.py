"""Score new images with a survey's or an ensemble's saved detector.

--model is a trial's MLflow Model: runs:/RUN_ID/model, models:/NAME/VERSION (see
`orchestrate register`) or a downloaded model folder. Writes, under --out:
anomaly_maps/<category>/test/<folder>/<stem>.tiff (the official MVTec LOCO layout, so
`orchestrate evaluate --maps OUT/anomaly_maps` reads it), overlays/ (the predicted region
at the threshold chosen on validation data, in red) and predictions.csv (image, score,
probability, label). An image that cannot be read is listed in errors.csv and skipped
while the rest go on (exit 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.common import command


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "predict", __doc__)
    p.add_argument("--model", required=True, metavar="URI", help="runs:/…, models:/… or a folder")
    p.add_argument("images", nargs="+", metavar="IMAGES_OR_DIR", help="image files or folders")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--device", default="auto", help="auto (default: CUDA when present), cpu, cuda, cuda:1"
    )
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per batch")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store of runs:/ and models:/ URIs (default: $MLFLOW_TRACKING_URI, "
        "else sqlite:///mlflow.db here)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.predict import predict_images
    from orchestrator.tracking import resolve_tracking_uri

    uri = None
    if args.model.startswith(("runs:/", "models:/")):
        uri = resolve_tracking_uri(args.tracking_uri, must_exist=True)
    res = predict_images(args.model, args.images, args.out, args.device, args.batch_size, uri)
    print(
        f"{res.scored} image(s) scored, {res.anomalous} anomalous at the validation threshold; "
        f"{len(res.failed)} skipped" + (f" (see {args.out / 'errors.csv'})" if res.failed else "")
    )
    print(f"predictions: {args.out / 'predictions.csv'}   maps: {args.out / 'anomaly_maps'}")
    return res.exit_code
