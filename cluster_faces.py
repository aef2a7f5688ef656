#!/usr/bin/env python3
"""Group the encoded faces by person and show (or write) a montage per person.

USAGE
    python cluster_faces.py --encodings encodings.pickle
    python cluster_faces.py -e encodings.pickle --method chinese-whispers -o output --organize link
"""

import argparse
import os

import numpy as np

from facecluster import cli
from facecluster.cluster import DEFAULTS, METHODS, cluster_encodings, looks_collapsed
from facecluster.montage import (cluster_montage, display_available, montage_filename, montage_title, show_montages,
                                 write_image)
from facecluster.store import EncodingsError, load_encodings

# construct the argument parser and parse the arguments
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("-e", "--encodings", required=True, help="path to serialized db of facial encodings")
ap.add_argument("-j", "--jobs", type=int, default=-1, help="# of parallel jobs to run (-1 will use all CPUs)")
ap.add_argument("-m", "--method", choices=METHODS, default="dbscan",
                help="clustering method (default dbscan, as in the tutorial; chinese-whispers or "
                     "agglomerative find people better in large or varied sets)")
ap.add_argument("--eps", type=float, default=DEFAULTS["dbscan"]["eps"], help="DBSCAN neighbourhood radius")
ap.add_argument("--min-samples", type=int, default=DEFAULTS["dbscan"]["min_samples"],
                help="DBSCAN: faces needed to form a cluster")
ap.add_argument("-t", "--threshold", type=float, default=None,
                help="chinese-whispers / agglomerative distance threshold (default: "
                     + ", ".join(f"{m} {d['threshold']}" for m, d in DEFAULTS.items() if "threshold" in d) + ")")
ap.add_argument("--min-cluster-size", type=int, default=None,
                help="smaller clusters count as unknown faces (default: 3 for chinese-whispers and "
                     "agglomerative, 2 for dbscan)")
ap.add_argument("--seed", type=int, default=0, help="seed for the montage sampling and chinese-whispers")
ap.add_argument("-o", "--output", default=None,
                help="write montages, clusters.csv, clusters.json and index.html here (default without a display: output)")
ap.add_argument("--organize", choices=("copy", "link"), default=None,
                help="also sort the photos into a folder per person in the output folder")
ap.add_argument("--labels", default=None, metavar="FILE|folders",
                help="score the clusters against known identities: a CSV 'path,identity' or 'folders'")
ap.add_argument("--score-all-faces", action="store_true",
                help="with --labels, score every face of a photo as its person (default: only the largest "
                     "face; the others are bystanders)")
ap.add_argument("--dataset-root", default=None,
                help="folder the --labels paths are relative to (default: the photos' common folder)")
args = vars(ap.parse_args())


def main() -> int:
    # load the serialized face encodings + bounding box locations from
    # disk, then extract the set of encodings so we can cluster on them
    print("[INFO] loading encodings...")
    try:
        data = load_encodings(args["encodings"])
    except EncodingsError as problem:
        raise cli.UsageError(f"{args['encodings']}: {problem}") from None
    encodings = np.array([d["encoding"] for d in data]).reshape(-1, 128)

    # cluster the embeddings
    print(f"[INFO] clustering ({args['method']})...")
    if len(data) == 0:
        cli.warning(f"{args['encodings']} holds no faces: nothing to cluster")
    elif args["method"] == "dbscan" and len(data) < args["min_samples"]:
        cli.warning(f"only {len(data)} faces, fewer than --min-samples {args['min_samples']}: "
                    "every face will be an outlier")
    labels = cluster_encodings(encodings, args["method"], eps=args["eps"], min_samples=args["min_samples"],
                               threshold=args["threshold"], seed=args["seed"], jobs=args["jobs"],
                               min_cluster_size=args["min_cluster_size"])

    # determine the total number of unique faces found in the dataset
    labelIDs = np.unique(labels)
    numUniqueFaces = len(np.where(labelIDs > -1)[0])
    print("[INFO] # unique faces: {}".format(numUniqueFaces))
    if looks_collapsed(labels, encodings):
        cli.warning(f"the largest cluster ({np.bincount(labels[labels >= 0]).max()} of {len(labels)} faces) "
                    "looks like many people merged into one; try --method chinese-whispers")

    if args["labels"]:
        report_quality(data, labels)

    # where the montages go: windows when there is a screen, files otherwise
    output = args["output"]
    interactive = output is None and display_available()
    if output is None and not interactive:
        output = "output"
        print("[INFO] no display: writing the montages to files instead of windows")
    elif output is None and args["organize"]:
        output = "output"  # the person folders need a home even when windows show the montages

    if output is not None:
        write_outputs(output, data, labels, each_montage(data, labels, labelIDs))
    if interactive:
        show_montages((montage_title(label), image) for label, image in each_montage(data, labels, labelIDs))
    return 0


def each_montage(data, labels, labelIDs):
    """Loop over the unique face integers, building a montage of a random
    sample of at most 25 faces for each -- one at a time, as it is shown or
    written, so the first window opens at once and memory stays flat."""
    rng = np.random.default_rng(args["seed"])
    for labelID in labelIDs:
        print("[INFO] faces for face ID: {}".format(labelID))
        idxs = np.where(labels == labelID)[0]
        yield int(labelID), cluster_montage(data, idxs, rng)


def report_quality(data, labels) -> None:
    from facecluster.cluster.evaluation import evaluate, format_report, primary_face_labels, read_labels

    paths = [d["imagePath"] for d in data]
    root = args["dataset_root"] or (os.path.commonpath([os.path.dirname(p) or "." for p in paths]) if paths else ".")
    try:
        identities = read_labels(args["labels"], paths, root)
        if not args["score_all_faces"]:
            identities = primary_face_labels(data, identities)
        metrics = evaluate(labels, identities)
    except ValueError as problem:
        raise cli.UsageError(f"--labels {args['labels']}: {problem}") from None
    print("[INFO] quality against " + ("folder names" if args["labels"] == "folders" else args["labels"]) + ":")
    for line in format_report(metrics).splitlines():
        print(f"[INFO]   {line}")


def write_outputs(output: str, data, labels, montages) -> None:
    """Everything people browse, into ``output``; montages are written as they are built."""
    from facecluster.outputs import organize, write_clusters_csv, write_clusters_json, write_gallery

    os.makedirs(output, exist_ok=True)
    montage_files = {}
    for label, image in montages:
        montage_files[label] = os.path.join(output, montage_filename(label))
        write_image(montage_files[label], image)
    write_clusters_csv(os.path.join(output, "clusters.csv"), data, labels)
    write_clusters_json(os.path.join(output, "clusters.json"), data, labels,
                        {"method": args["method"], "encodings": args["encodings"]})
    if args["organize"]:  # before the gallery, which links to the person folders
        done = organize(output, data, labels, args["organize"])
        print(f"[INFO] {done.placed} photos sorted into {len(done.folders)} folders in {output}/ ({done.mode})")
    gallery = write_gallery(output, data, labels, montage_files)
    print(f"[INFO] wrote {len(montage_files)} montages, clusters.csv, clusters.json and {gallery}")


if __name__ == "__main__":
    cli.run(main, known_errors=(ValueError, OSError))
