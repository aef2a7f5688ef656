"""The model files and dlib objects that face_recognition's api.py builds.

Each model is loaded on first use, once per process -- never at import: a run
that never needs the 68-point predictor or the CNN never pays for loading
them, and the run preloads what it needs once, deliberately, before its
workers fork (:meth:`facecluster.run.pipeline.Method.preload`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import types
import warnings


def cuda_available() -> bool:
    """Whether this dlib was built with CUDA (so the CNN detector is fast)."""
    import dlib

    return bool(getattr(dlib, "DLIB_USE_CUDA", False))


def install_pkg_resources_shim() -> None:
    """face_recognition_models needs ``pkg_resources.resource_filename``.

    setuptools 81+ no longer ships ``pkg_resources`` and a fresh Python 3.12+
    venv has no setuptools at all; face_recognition then says "Please install
    face_recognition_models" and quits.  The one function it uses is a path
    join, so supply it when the real module is missing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pkg_resources  # noqa: F401
        return
    except ImportError:
        sys.modules["pkg_resources"] = _pkg_resources_stand_in()


def _pkg_resources_stand_in() -> types.ModuleType:
    """A ``pkg_resources`` with the one function face_recognition_models calls."""

    def resource_filename(package: str, resource: str) -> str:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"package {package} not found")
        return os.path.join(list(spec.submodule_search_locations)[0], resource)

    stand_in = types.ModuleType("pkg_resources")
    stand_in.resource_filename = resource_filename  # type: ignore[attr-defined]
    return stand_in


@functools.cache
def model_files() -> types.ModuleType:
    """face_recognition_models, which only knows where the model files are.

    It imports ``pkg_resources`` for that one path join (see
    :func:`install_pkg_resources_shim`); where setuptools still ships it, importing
    it costs ~60 ms of every run's start.  So unless something has imported it
    already, face_recognition_models is imported against the stand-in, which is
    taken away again after: nothing else in the process ever sees it.
    """
    if "pkg_resources" in sys.modules:
        import face_recognition_models
    else:
        sys.modules["pkg_resources"] = _pkg_resources_stand_in()
        try:
            import face_recognition_models
        finally:
            del sys.modules["pkg_resources"]
    return face_recognition_models


@functools.cache
def hog_detector():
    """dlib's HOG face detector, read from its saved form kept on disk
    (:mod:`.model_cache`): 1 ms, where dlib builds it in 0.33-0.54 s."""
    import dlib

    from . import cache as model_cache

    return model_cache.kept("hog-frontal-face.svm", f"dlib {dlib.__version__}",
                            lambda path: dlib.get_frontal_face_detector().save(str(path)),
                            lambda path: dlib.fhog_object_detector(str(path)))


@functools.cache
def cnn_detector():
    import dlib

    return dlib.cnn_face_detection_model_v1(model_files().cnn_face_detector_model_location())


@functools.cache
def landmark_predictor(model: str = "small"):
    """dlib's 5-point (``small``) or 68-point (``large``) landmark predictor."""
    import dlib

    files = model_files()
    if model == "large":
        return dlib.shape_predictor(files.pose_predictor_model_location())
    return dlib.shape_predictor(files.pose_predictor_five_point_model_location())


@functools.cache
def dlib_encoder():
    import dlib

    return dlib.face_recognition_model_v1(model_files().face_recognition_model_location())
