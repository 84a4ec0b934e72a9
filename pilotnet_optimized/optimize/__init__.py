"""Post-training conversions of a trained tf_keras PilotNet: TFLite (five quantization modes), SavedModel, ONNX.

Each converter writes its output atomically, writes the preprocessing sidecar beside it, returns the path and
prints nothing (pass ``log`` to hear about progress). TensorFlow is imported only when a converter runs.
"""

from __future__ import annotations

from pilotnet_optimized.optimize.onnx import to_onnx
from pilotnet_optimized.optimize.savedmodel import to_savedmodel
from pilotnet_optimized.optimize.tflite import QUANTIZATIONS, to_tflite

__all__ = ['QUANTIZATIONS', 'to_onnx', 'to_savedmodel', 'to_tflite']
