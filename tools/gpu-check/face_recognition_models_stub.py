"""Stand-in for face_recognition_models 0.3.0 on the GPU check machine (.gpu/ only, never committed).

The real wheel is 100 MB, nearly all of it the 68-point landmark predictor, which the check does not
use; it is not carried.  face_recognition's api.py loads the 68-point predictor at import, so
``pose_predictor_model_location`` points at the 5-point file here: importing face_recognition works,
face_locations/face_encodings (5-point, its default) are exact, and anything that really uses the
68 points (face_landmarks, --landmarks large) gives wrong results -- the check runs none of it.
"""
import os

__version__ = "0.3.0+gpucheck"
_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def pose_predictor_model_location():
    return os.path.join(_MODELS, "shape_predictor_5_face_landmarks.dat")  # NOT the 68-point model: see above


def pose_predictor_five_point_model_location():
    return os.path.join(_MODELS, "shape_predictor_5_face_landmarks.dat")


def face_recognition_model_location():
    return os.path.join(_MODELS, "dlib_face_recognition_resnet_model_v1.dat")


def cnn_face_detector_model_location():
    return os.path.join(_MODELS, "mmod_human_face_detector.dat")
