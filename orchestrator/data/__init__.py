"""Data layer: MVTec LOCO AD / MVTec AD / custom LOCO-format loaders, validator, synthetic set."""

from orchestrator.data.datasets import load_dataset
from orchestrator.data.fingerprint import fingerprint
from orchestrator.data.loco import load_category
from orchestrator.data.types import Category, DefectSpec, Region, Sample, SampleSet

__all__ = [
    "Category",
    "DefectSpec",
    "Region",
    "Sample",
    "SampleSet",
    "fingerprint",
    "load_category",
    "load_dataset",
]
