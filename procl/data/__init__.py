"""Datasets: specs, adapters and the built-in synthetic generator."""
from procl.data.records import BACKGROUND, Dataset, Segment, VideoRecord

__all__ = ["BACKGROUND", "Dataset", "Segment", "VideoRecord"]
