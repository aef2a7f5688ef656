#!/usr/bin/env python3
"""The tutorial's encode_faces.py loop, as the baseline for `make bench`.

One process, every photo read with OpenCV, HOG detection at face_recognition's
default upsampling, one face_encodings call per photo.  It writes the same
pickle format, so its faces can be counted and clustered like ours.
"""

import argparse
import pickle

import bench_paths  # noqa: E402,F401  (sets up sys.path)
from facecluster.models.dlib_models import install_pkg_resources_shim  # noqa: E402  (same models, same install)

install_pkg_resources_shim()
import cv2  # noqa: E402
import face_recognition  # noqa: E402
from imutils import paths  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("-i", "--dataset", required=True)
ap.add_argument("-e", "--encodings", required=True)
ap.add_argument("-d", "--detection-method", default="hog")
args = vars(ap.parse_args())

imagePaths = sorted(paths.list_images(args["dataset"]))
data = []
for imagePath in imagePaths:
    image = cv2.imread(imagePath)
    if image is None:  # the tutorial would crash here; the baseline just moves on
        continue
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    boxes = face_recognition.face_locations(rgb, model=args["detection_method"])
    encodings = face_recognition.face_encodings(rgb, boxes)
    d = [{"imagePath": imagePath, "loc": box, "encoding": enc} for (box, enc) in zip(boxes, encodings)]
    data.extend(d)

with open(args["encodings"], "wb") as f:
    f.write(pickle.dumps(data))
