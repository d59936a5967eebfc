"""Datasets: specs, adapters and the built-in synthetic generator."""
from procl.data.records import BACKGROUND, Dataset, Segment, VideoRecord
from procl.data.specs import load_feature_array, open_dataset, parse_spec

__all__ = ["BACKGROUND", "Dataset", "Segment", "VideoRecord", "load_feature_array", "open_dataset", "parse_spec"]
