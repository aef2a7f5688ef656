#!/usr/bin/env python3
"""Find every face in a folder of photos and videos and save their 128-d encodings.

USAGE
    python encode_faces.py --dataset dataset --encodings encodings.pickle
    python encode_faces.py -i dataset -e encodings.pickle -d hog --workers 2
    python encode_faces.py -i dataset -e encodings.pickle --dask tcp://scheduler:8786
"""

import argparse
import os
from contextlib import nullcontext

from facecluster import cli
from facecluster.files import check_output_file, display_path
from facecluster.run import dask_runner, report
from facecluster.detect.detectors import DETECTION_METHODS, choose_detector, slow_on_this_machine
from facecluster.embed.encoders import DEFAULT_MIRROR, ENCODERS, LANDMARK_MODELS, choose_encoder
from facecluster.store.photo_cache import CacheError, cache_path_for
from facecluster.run.pipeline import DatasetError, Method, encode_dataset, list_dataset, run_in_processes
from facecluster.run.videos import DEFAULT_FACES_PER_TRACK, DEFAULT_STEP, VideoOptions, add_to_summary, encode_videos
from facecluster.store import save_encodings


def upsample_arg(value: str) -> int | None:
    return None if value == "auto" else int(value)


# construct the argument parser (the arguments are parsed in main)
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("-i", "--dataset", required=True, help="path to input directory of faces + images")
ap.add_argument("-e", "--encodings", required=True, help="path to serialized db of facial encodings")
ap.add_argument("-d", "--detection-method", type=str, default="auto", choices=DETECTION_METHODS,
                help="face detection model: hog, cnn, or auto (cnn with CUDA; else hog, and cnn where hog finds no face)")
ap.add_argument("-w", "--workers", type=int, default=0, help="worker processes (default 0: one per core)")
ap.add_argument("--upsample", type=upsample_arg, default=None, metavar="auto|0..4",
                help="times to upsample each photo before detection (default auto: by photo size)")
ap.add_argument("--max-detect-side", type=int, default=2000,
                help="longest side, in pixels, of the copy the detector sees (0: no limit)")
ap.add_argument("--jitters", type=int, default=1,
                help="re-samplings per face encoding (slower, a little more robust; runs dlib's encoder, "
                     "in place of the mirror pass)")
ap.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=DEFAULT_MIRROR,
                help="encode each face and its mirror image and average the two (default; LFW verification "
                     "99.17%% against 98.88%%); --no-mirror: once, exactly as face_recognition does")
ap.add_argument("--landmarks", choices=LANDMARK_MODELS, default="small",
                help="landmark model for face alignment: 5-point (small) or 68-point (large)")
ap.add_argument("--encoder", choices=ENCODERS, default="numpy",
                help="runs the face_recognition ResNet: numpy (dlib's weights on onnxruntime or numpy: "
                     "the same encodings, ~20x faster here) or dlib")
ap.add_argument("--batch-size", type=int, default=32, help="photos per CNN batch on CUDA (default 32)")
ap.add_argument("--video-step", type=float, default=DEFAULT_STEP,
                help=f"videos: seconds between the frames looked at (default {DEFAULT_STEP})")
ap.add_argument("--faces-per-track", type=int, default=DEFAULT_FACES_PER_TRACK,
                help=f"videos: faces kept each time a person is on screen (default {DEFAULT_FACES_PER_TRACK})")
ap.add_argument("--fresh", action="store_true", help="ignore results kept from earlier runs")
ap.add_argument("--dask", metavar="tcp://HOST:8786", help="encode on the workers of this running Dask scheduler (docs/dask.md)")
ap.add_argument("--dask-photos", choices=dask_runner.PHOTO_MODES, default="auto",
                help="with --dask: workers read the photos (shared), or they are sent from here (send); "
                     "default auto: shared when every worker sees them")


def main() -> int:
    args = vars(ap.parse_args())

    # choose the detector and the encoder once, and say which and why
    if args["workers"] < 0 or args["batch_size"] < 1:
        raise cli.UsageError("--workers must be 0 or more and --batch-size at least 1")
    detector, why = choose_detector(args["detection_method"], batch_size=args["batch_size"],
                                    upsample=args["upsample"], max_detect_side=args["max_detect_side"])
    print(f"[INFO] detection method: {detector.name} ({why})")
    encoder, why = choose_encoder(args["encoder"], args["landmarks"], args["jitters"], args["mirror"])
    print(f"[INFO] encoder: {encoder.name} ({why})")
    video_options = VideoOptions(args["video_step"], args["faces_per_track"])

    check_writable(args["encodings"])

    # grab the paths to the input images in our dataset, then detect and
    # encode the faces in every one of them
    print("[INFO] quantifying faces...")
    listing = list_dataset(args["dataset"])
    for folder in listing.outputs:
        print(f"[INFO] skipped {display_path(folder)}: cluster_faces.py's output folder, not photos to encode")
    method = Method(detector, encoder)
    # the photos on this machine's cores, or with --dask on a cluster's workers
    # (checked now, one line if it can't; let go of when the run ends, however it ends)
    with (dask_runner.connect(args["dask"], method, listing, args["dask_photos"]) if args["dask"]
          else nullcontext(run_in_processes)) as runner:
        slow = slow_on_this_machine(detector, len(listing.images), args["workers"] or os.cpu_count() or 1)
        if slow:
            cli.warning(slow)
        progress = cli.Progress(len(listing.images))
        records, summary = encode_dataset(
            listing, args["encodings"], method, workers=args["workers"], fresh=args["fresh"], runner=runner,
            on_result=lambda result, reused: progress.step(" (reused)" if reused else ""),
        )
        progress.close()
    video_records, videos = encode_videos(listing.videos, args["encodings"], method, video_options,
                                          workers=args["workers"], fresh=args["fresh"], root=listing.root)
    records += video_records
    add_to_summary(summary, videos)
    report.print_videos(videos)
    report.warn_skipped(summary, args["encodings"])

    # dump the facial encodings data to disk, and say what became of every photo
    print("[INFO] serializing encodings...")
    save_encodings(args["encodings"], records)
    report.write_lists(summary, args["encodings"])
    report.print_summary(summary, args["encodings"], detector.name)
    if args["dask"]:
        print(runner.summary())
    return 0


def check_writable(encodings: str) -> None:
    """Fail before any work if the encodings file, its cache or its lists could not be written."""
    if os.path.isdir(encodings):
        raise cli.UsageError(f"{encodings}: is a folder; give a file name for the encodings")
    problem = check_output_file(encodings, longest_suffix=len(cache_path_for("")) + len("-journal"))
    if problem:
        raise cli.UsageError(problem)


def run() -> None:
    """The ``facecluster-encode`` command (``pip install .``)."""
    cli.run(main, known_errors=(DatasetError, dask_runner.DaskError, CacheError, ValueError, OSError))


if __name__ == "__main__":
    run()
