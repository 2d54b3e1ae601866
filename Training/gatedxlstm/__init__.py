"""Reference GatedxLSTM classifier in PyTorch (NX-AI xlstm package), used for fixtures, training and export."""
from .model import ClassifierConfig, GatedXLSTMClassifier, STREAM_NAMES  # noqa: F401
