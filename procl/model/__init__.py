"""SAN, KLN, TCN and the combined network (the paper's Fig. 1)."""
from procl.model.attention import SpatialAttention
from procl.model.classifier import TaskClassifier, keystep_features
from procl.model.localizer import KeyStepLocalizer
from procl.model.losses import classification_loss, ranking_loss
from procl.model.masks import frame_mean, pad_videos, zero_padding
from procl.model.network import NetConfig, NetOutput, ProcedureNet

__all__ = [
    "SpatialAttention", "KeyStepLocalizer", "TaskClassifier", "keystep_features",
    "ranking_loss", "classification_loss", "NetConfig", "NetOutput", "ProcedureNet", "pad_videos",
    "frame_mean", "zero_padding",
]
