#!/usr/bin/env python3
"""How the detection scale trades faces found for time (sets the defaults).

Runs HOG detection alone, one thread, on samples of each photo set with the
tutorial's fixed 2x upsampling, no upsampling, and our size-based rule for a
few (min_detect_side, max_detect_side) pairs; prints faces found, photos with
a face and ms per photo.  Usage: FACES_DATA=../shared/datasets python benchmarks/detection_scale.py
"""

import time

from bench_paths import faces_data  # noqa: E402  (first: sets up sys.path)
from threadpoolctl import threadpool_limits  # noqa: E402

from facecluster.detect.detectors import HogDetector  # noqa: E402
from facecluster.sources.folder import list_images
from facecluster.sources.images import load_image  # noqa: E402


def main() -> None:
    data = faces_data()
    threadpool_limits(1)
    HogDetector().preload()
    sets = {
        "lfw (every 44th)": list_images(str(data / "lfw-deepfunneled")).images[::44][:300],
        "fr examples": list_images(str(data / "face_recognition_examples")).images,
        "yale (every 2nd)": list_images(str(data / "yale_faces")).images[::2],
        "orl (every 8th)": list_images(str(data / "orl_att_faces")).images[::8],
    }
    configs = {"tutorial: 2x always": HogDetector(upsample=1, max_detect_side=0),
               "no upsampling": HogDetector(upsample=0, max_detect_side=0)}
    for low in (500, 700, 1000):
        for high in (1200, 2000):
            configs[f"auto, min {low}, max {high}"] = HogDetector(min_detect_side=low, max_detect_side=high)
    print("| set | detection | photos | faces | photos with a face | ms/photo |")
    print("|---|---|---|---|---|---|")
    for name, paths in sets.items():
        images = [load_image(p).rgb for p in paths]
        for label, detector in configs.items():
            started = time.perf_counter()
            found = [len(detector.detect(image)) for image in images]
            ms = 1000 * (time.perf_counter() - started) / len(images)
            print(f"| {name} | {label} | {len(images)} | {sum(found)} | {sum(1 for f in found if f)} | {ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
