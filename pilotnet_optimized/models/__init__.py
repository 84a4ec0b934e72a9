"""PilotNet definitions, the one preprocessing function, dataset loading and training.

Nothing here imports TensorFlow at import time: the model builders and the trainer import it when called.
"""

from pilotnet_optimized.models.preprocess import (
    Preprocessing, denormalise_labels, normalise_input, normalise_labels, preprocess, resize_frame)

__all__ = ['Preprocessing', 'denormalise_labels', 'normalise_input', 'normalise_labels', 'preprocess',
           'resize_frame']
