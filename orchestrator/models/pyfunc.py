"""A detector as an MLflow Model (pyfunc flavour), so that ``mlflow.pyfunc.load_model``,
the model registry and ``mlflow models serve`` all work on a trial's ``model`` artifact.

Input: a DataFrame with one column ``image``: each row one image file's bytes (PNG, JPEG,
TIFF, BMP: whatever the dataset loader reads, 16-bit PNGs included) as a base64 string.
Chosen because ``mlflow models serve`` takes JSON only (``dataframe_split`` /
``dataframe_records``): base64 carries the file unchanged, so a served model decodes it with
the very loader the method was trained and evaluated with (no lossy pixel lists, no resize
outside the method). Output: one row per image with ``score`` (the method's raw image score),
``probability`` (the bounded sigmoid fitted on validation), ``label`` (``anomalous`` /
``good`` at the validation-chosen threshold) and, with the parameter ``maps=True``,
``anomaly_map`` (a base64 ``.npy`` float32 array at the image's own size:
:func:`decode_map`). Load-time option (``model_config``): ``device`` (``auto``: CUDA when
present).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from orchestrator.models.detector import Detector

IMAGE_COLUMN = "image"
ARTIFACT = "detector"
#: PIL format -> file suffix the dataset loader reads
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tiff", "BMP": ".bmp"}


def encode_image(path: str | Path) -> str:
    """A file's bytes as the model's input string."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def encode_map(anomaly_map: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, np.asarray(anomaly_map, dtype=np.float32), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_map(text: str) -> np.ndarray:
    """The ``anomaly_map`` column's value as a float32 ``[H, W]`` array."""
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def write_images(values: list[Any], folder: Path) -> list[Path]:
    """Decode base64 image strings into files under ``folder``; ValueError naming the first
    row that is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    paths = []
    for i, value in enumerate(values):
        try:
            raw = base64.b64decode(str(value), validate=True)
            with Image.open(io.BytesIO(raw)) as im:
                fmt = im.format
        except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"row {i}: not a base64-encoded image ({exc})") from exc
        if fmt not in _SUFFIX:
            raise ValueError(f"row {i}: image format {fmt} is not one of {', '.join(_SUFFIX)}")
        path = folder / f"{i:06d}{_SUFFIX[fmt]}"
        path.write_bytes(raw)
        paths.append(path)
    return paths


def resolve_device(device: str | None) -> str:
    """``auto`` (or None): ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device in (None, "", "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


class DetectorModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper; its state is the ``detector`` artifact (:class:`Detector`)."""

    detector: Detector

    def load_context(self, context) -> None:
        device = resolve_device((context.model_config or {}).get("device"))
        self.detector = Detector.load(Path(context.artifacts[ARTIFACT]), device=device)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        if IMAGE_COLUMN not in model_input.columns:
            raise ValueError(f"the input needs a column {IMAGE_COLUMN!r} (base64 image files)")
        maps = bool((params or {}).get("maps", False))
        batch = int((params or {}).get("batch_size", 16))
        with tempfile.TemporaryDirectory(prefix="predict-") as tmp:
            paths = write_images(list(model_input[IMAGE_COLUMN]), Path(tmp))
            found = self.detector.detect(paths, maps=maps, batch_size=batch)
        out = pd.DataFrame(
            {
                "score": found.scores,
                "probability": found.probabilities,
                "label": np.where(found.anomalous, "anomalous", "good"),
            }
        )
        if maps:
            out["anomaly_map"] = [encode_map(m) for m in found.maps or []]
        return out


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", IMAGE_COLUMN)]),
        outputs=Schema(
            [
                ColSpec("double", "score"),
                ColSpec("double", "probability"),
                ColSpec("string", "label"),
                ColSpec("string", "anomaly_map", required=False),
            ]
        ),
        params=ParamSchema(
            [ParamSpec("maps", "boolean", False), ParamSpec("batch_size", "long", 16)]
        ),
    )


def requirements() -> list[str]:
    """What a served model needs: this project (which brings torch and the rest) and the
    MLflow it was saved with."""
    from importlib.metadata import PackageNotFoundError, version

    from orchestrator.paths import PROJECT_NAME

    try:
        project = f"{PROJECT_NAME}=={version(PROJECT_NAME)}"
    except PackageNotFoundError:
        project = PROJECT_NAME
    return [project, f"mlflow=={mlflow.__version__}"]


@contextmanager
def _quiet_save() -> Iterator[None]:
    """No artifact progress bar and no input-example advice while a model is saved (there
    is no input example on purpose: MLflow would run the model on it at every save)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def save_detector_model(path: str | Path, detector: Detector) -> Path:
    """Write ``detector`` as an MLflow Model folder at ``path`` (must not exist yet): the
    pyfunc class from code (model_code.py, nothing pickled), the detector as an artifact."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="detector-") as tmp, _quiet_save():
        saved = detector.save(Path(tmp) / ARTIFACT)
        mlflow.pyfunc.save_model(
            str(path),
            python_model=str(Path(__file__).with_name("model_code.py")),
            artifacts={ARTIFACT: str(saved)},
            signature=signature(),
            pip_requirements=requirements(),
            model_config={"device": "auto"},  # load_model(..., model_config=) may change it
            metadata={"detector": detector.info, "thresholds": detector.thresholds.as_dict()},
        )
    return path


def load_detector(uri: str, device: str = "auto", tracking_uri: str | None = None) -> Detector:
    """The :class:`Detector` behind an MLflow Model URI (``runs:/ID/model``,
    ``models:/NAME/VERSION``, a folder), its adapter on ``device``."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(uri, model_config={"device": resolve_device(device)})
    return model.unwrap_python_model().detector
