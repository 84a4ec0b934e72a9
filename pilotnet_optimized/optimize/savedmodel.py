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
Export of a tf_keras model as a SavedModel folder with one fixed serving signature.

The folder is for TF Serving, TF-TRT and the TensorFlow backend.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import shutil
import tempfile
from typing import TYPE_CHECKING

from pilotnet_optimized.errors import ConversionError, one_line
from pilotnet_optimized.models.preprocess import check_model_input, Preprocessing
from pilotnet_optimized.store import size_mb

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

__all__ = ['to_savedmodel', 'INPUT_NAME', 'OUTPUT_NAME']

INPUT_NAME = 'image'
OUTPUT_NAME = 'vw'


def to_savedmodel(
    model: tf_keras.Model,
    out_dir: str | Path,
    preprocessing: Preprocessing | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """
    Save ``model`` as a SavedModel folder with a ``serving_default`` signature.

    The signature maps ``image`` (N x height x width x 3 float32, preprocessed) to ``vw`` (N x 2,
    normalised). The folder is written next to ``out_dir`` under a temporary name and renamed into
    place, replacing any previous export; the preprocessing sidecar goes beside it
    (``<out_dir>.preprocessing.json``).

    :returns: ``out_dir``.
    :raises ConversionError: when the model's input does not match the preprocessing or saving
        fails.
    """
    import tensorflow as tf

    preprocessing = preprocessing or Preprocessing()
    check_model_input(model, preprocessing)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    spec = tf.TensorSpec([None, *preprocessing.input_shape], tf.float32, name=INPUT_NAME)

    # A fixed signature with named output: the default one would name the output after the last
    # layer.
    @tf.function(input_signature=[spec])
    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(image, training=False)}

    # Save a module holding only the model's variables and the signature: saving the Keras model
    # itself would also store the optimizer's slots (three times the size after Adam) and Keras
    # metadata nobody loads.
    module = tf.Module()
    module.weights = list(model.variables)
    module.serve = serve
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.tmp', dir=out_dir.parent))
    try:
        tf.saved_model.save(module, str(tmp), signatures={'serving_default': serve})
        tmp.chmod(0o755)  # mkdtemp makes a private folder; exported models are meant to be shared
        _replace_dir(tmp, out_dir)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConversionError(f'SavedModel export to {out_dir} failed: {one_line(err, 500)}') \
            from err
    preprocessing.save(out_dir)
    if log:
        log(f'{out_dir}: SavedModel, {size_mb(out_dir):.2f} MB')
    return out_dir


def _replace_dir(new: Path, target: Path) -> None:
    """
    Rename ``new`` to ``target``.

    An existing ``target`` is moved aside first and deleted only once the new folder is in place
    (restored if that rename fails), so a reader never sees a half-written folder.
    """
    if not target.exists():
        new.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f'.{target.name}.', suffix='.old', dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        new.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
