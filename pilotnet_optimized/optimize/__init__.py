# Copyright 2026 pilotnet_optimized contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Post-training conversions of a trained tf_keras PilotNet.

TFLite (five quantization modes), SavedModel, ONNX.

Each converter writes its output atomically, writes the preprocessing sidecar beside it, returns
the path and prints nothing (pass ``log`` to hear about progress). TensorFlow is imported only when
a converter runs.
"""

from __future__ import annotations

from pilotnet_optimized.optimize.onnx import to_onnx
from pilotnet_optimized.optimize.savedmodel import to_savedmodel
from pilotnet_optimized.optimize.tflite import QUANTIZATIONS, to_tflite

__all__ = ['QUANTIZATIONS', 'to_onnx', 'to_savedmodel', 'to_tflite']
