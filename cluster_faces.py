#!/usr/bin/env python3
"""Group the encoded faces by person and show (or write) a montage per person.

USAGE
    python cluster_faces.py --encodings encodings.pickle
    python cluster_faces.py -e encodings.pickle --method chinese-whispers -o output --organize link
    python cluster_faces.py -e encodings.pickle -m adaptive --known known_people -o output
    python cluster_faces.py -e encodings.pickle -m adaptive --name person_03="Ada Lovelace"
"""

import argparse
import os

import numpy as np

from facecluster import cli
from facecluster import people
from facecluster.cluster import DEFAULTS, METHODS, RECOMMENDED_METHOD, check_params, cluster_encodings
from facecluster.cluster.collapse import collapse_text, what_collapsed
from facecluster.cluster.constraints import Constraints, repeated_pictures
from facecluster.present import DEFAULT_MAX_MONTAGES, PresentOptions, present
from facecluster.present.output import check_output
from facecluster.present.windows import display_available
from facecluster.store import EncodingsError, load_encodings, take_encodings

# construct the argument parser
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("-e", "--encodings", required=True, help="path to serialized db of facial encodings")
ap.add_argument("-j", "--jobs", type=int, default=-1, help="# of parallel jobs to run (-1 will use all CPUs)")
ap.add_argument("-m", "--method", choices=METHODS, default="dbscan",
                help=f"clustering method (default dbscan, as in the tutorial; {RECOMMENDED_METHOD} reads the "
                     "collection and needs no threshold: recommended)")
ap.add_argument("--eps", type=float, default=DEFAULTS["dbscan"]["eps"], help="DBSCAN neighbourhood radius")
ap.add_argument("--min-samples", type=int, default=DEFAULTS["dbscan"]["min_samples"],
                help="DBSCAN: faces needed to form a cluster")
ap.add_argument("-t", "--threshold", type=float, default=None,
                help="chinese-whispers / agglomerative distance threshold, hdbscan's ceiling; adaptive sets its own (default: "
                     + ", ".join(f"{m} {d['threshold']}" for m, d in DEFAULTS.items() if "threshold" in d) + ")")
ap.add_argument("--min-cluster-size", type=int, default=None,
                help="smaller clusters count as unknown faces (default: 3 for chinese-whispers, "
                     "agglomerative and hdbscan, 2 for dbscan and adaptive)")
ap.add_argument("--seed", type=int, default=0, help="seed for the montage sampling and chinese-whispers")
ap.add_argument("-o", "--output", default=None,
                help="write montages, clusters.csv, clusters.json and index.html here (default without a display: output)")
ap.add_argument("--overwrite", action="store_true",
                help="write into an --output folder that holds files facecluster did not write "
                     "(files with facecluster's names are replaced); without it such a folder is refused")
ap.add_argument("--organize", choices=("copy", "link"), default=None,
                help="also sort the photos into a folder per person in the output folder")
ap.add_argument("--max-montages", type=int, default=DEFAULT_MAX_MONTAGES,
                help=f"montages and gallery sections for at most this many clusters, largest first "
                     f"(default {DEFAULT_MAX_MONTAGES}); clusters.csv and clusters.json hold every face")
ap.add_argument("--labels", default=None, metavar="FILE|folders",
                help="score the clusters against known identities: a CSV 'path,identity' or 'folders'")
ap.add_argument("--score-all-faces", action="store_true",
                help="with --labels, score every face of a photo as its person (default: only the largest "
                     "face; the others are bystanders)")
ap.add_argument("--dataset-root", default=None,
                help="folder the --labels paths are relative to (default: the photos' common folder)")
ap.add_argument("--known", default=None, metavar="DIR|ENCODINGS",
                help="name the clusters after known people: a folder with a folder of photos per person "
                     "(the folder's name is the name), or an encodings file made from one")
ap.add_argument("--name", action="append", default=[], metavar='person_03="Ada Lovelace"',
                help="name (or with nothing after '=', unname) a person of an earlier run; kept for every "
                     "later run (repeatable)")
ap.add_argument("--merge", action="append", default=[], metavar="person_07=person_03",
                help="show a person of an earlier run as another (one person the clustering split in two; "
                     "person_07= undoes it); kept for every later run (repeatable)")
ap.add_argument("--people-store", default=None, metavar="FILE|none",
                help="where person IDs and names are kept from run to run (default: ENCODINGS.people.sqlite; "
                     "none: keep nothing, number people as the clustering does)")
ap.add_argument("--list-people", action="store_true",
                help="list the stored people (ID, name, faces, hidden) and stop")


def main() -> int:
    args = vars(ap.parse_args())
    check_arguments(args)  # before reading a possibly huge file
    if args["list_people"]:
        return list_people(args["store"])
    output, windows = where_to_show(args["output"], args["organize"])
    problem = check_output(output, args["overwrite"]) if output is not None else None
    if problem:  # a read-only, full or someone else's folder: said now, not after clustering
        raise cli.UsageError(problem)

    # load the serialized face encodings + bounding box locations from
    # disk, then extract the set of encodings so we can cluster on them
    print("[INFO] loading encodings...")
    try:
        data = load_encodings(args["encodings"])
    except EncodingsError as problem:
        raise cli.UsageError(f"{args['encodings']}: {problem}") from None
    encodings = take_encodings(data)  # one float32 array; the records keep path and box
    # Who appears together: faces of one picture are two people, a video track is one.
    constraints = Constraints.from_records(data)
    known = None
    if args["known"]:
        print(f"[INFO] reading the known people in {args['known']}...")
        known = people.load_known(args["known"], args["encodings"], cli.warning)

    # cluster the embeddings
    print(f"[INFO] clustering ({args['method']})...")
    if len(data) == 0:
        cli.warning(f"{args['encodings']} holds no faces: nothing to cluster")
    elif args["method"] == "dbscan" and len(data) < args["min_samples"]:
        cli.warning(f"only {len(data)} faces, fewer than --min-samples {args['min_samples']}: "
                    "every face will be an outlier")
    labels = cluster_encodings(encodings, args["method"], eps=args["eps"], min_samples=args["min_samples"],
                               threshold=args["threshold"], seed=args["seed"], jobs=args["jobs"],
                               min_cluster_size=args["min_cluster_size"], constraints=constraints,
                               explain=lambda choice: print(f"[INFO] {args['method']}: {choice}"))

    # determine the total number of unique faces found in the dataset
    labelIDs = np.unique(labels)
    numUniqueFaces = len(np.where(labelIDs > -1)[0])
    print("[INFO] # unique faces: {}".format(numUniqueFaces))
    warn_if_collapsed(args, encodings, labels, constraints)

    # the same person, the same ID, every run; names from --known, earlier runs and --name
    found = people.identify(encodings, labels, known=known, store_path=args["store"],
                            encodings_path=args["encodings"], renames=args["renames"], merges=args["merges"],
                            warn=cli.warning)
    labels = found.labels
    for line in found.lines:
        print(f"[INFO] {line}")
    # after the IDs are settled (merges included), so clusters.json and the gallery name the same IDs
    repeats = repeated_pictures(labels, constraints)
    twice = len({int(constraints.pictures[r.faces[0]]) for r in repeats})
    print(f"[INFO] pictures holding one cluster twice: {twice} (of {constraints.multi_face_pictures()} "
          "with two or more faces)")

    if args["labels"]:
        report_quality(data, labels, args["labels"], args["dataset_root"], args["score_all_faces"])

    # one montage per face ID -- in windows when there is a screen, as files
    # (with clusters.csv, clusters.json and an HTML gallery) otherwise
    present(output, data, labels, PresentOptions(
        show_windows=windows, organize=args["organize"], seed=args["seed"], max_montages=args["max_montages"],
        run={"method": args["method"], "encodings": args["encodings"]}, names=found.names, repeats=repeats))
    return 0


# Up to this many faces, a collapsed run also tries the recommended method
# (a second or two) to say what it finds.
TRY_RECOMMENDED_UP_TO = 20_000


def warn_if_collapsed(args: dict, encodings: np.ndarray, labels: np.ndarray, constraints: Constraints) -> None:
    """Say plainly when the clusters look collapsed, and what would do better."""
    from facecluster.cluster.constraints import count_repeated

    method = args["method"]
    threshold = args["threshold"] if args["threshold"] is not None else DEFAULTS[method].get("threshold")
    seen = what_collapsed(labels, encodings, constraints)
    if seen is None:
        return
    better = None
    if method != RECOMMENDED_METHOD and len(labels) <= TRY_RECOMMENDED_UP_TO:
        tried = cluster_encodings(encodings, RECOMMENDED_METHOD, seed=args["seed"], jobs=args["jobs"],
                                  constraints=constraints)
        better = (RECOMMENDED_METHOD, int(tried.max()) + 1, count_repeated(tried, constraints))
    cli.warning(collapse_text(labels, seen, method, threshold, better))


def check_arguments(args: dict) -> None:
    """Refuse a bad option with one line (exit 2) before anything is read."""
    try:
        check_params(args["method"], eps=args["eps"], min_samples=args["min_samples"], threshold=args["threshold"],
                     seed=args["seed"], jobs=args["jobs"], min_cluster_size=args["min_cluster_size"])
    except ValueError as problem:
        raise cli.UsageError(f"bad option: {problem}") from None
    if args["max_montages"] < 1:
        raise cli.UsageError(f"bad option: --max-montages must be at least 1, got {args['max_montages']}")
    if args["labels"] not in (None, "folders") and not os.path.isfile(args["labels"]):
        raise cli.UsageError(f"--labels {args['labels']}: no such file")
    if args["known"] is not None and not os.path.exists(args["known"]):
        raise cli.UsageError(f"--known {args['known']}: no such folder or file")
    no_store = args["people_store"] is not None and args["people_store"].lower() == "none"
    args["store"] = None if no_store else args["people_store"] or people.store_path_for(args["encodings"])
    try:
        args["renames"], args["merges"] = people.parse_renames(args["name"]), people.parse_merges(args["merge"])
        if (args["renames"] or args["merges"]) and args["store"] is None:
            raise ValueError("--name and --merge need the people store (not --people-store none)")
        if args["store"] is not None:
            people.check_renames(args["renames"], args["store"], args["merges"])
    except ValueError as problem:
        raise cli.UsageError(str(problem)) from None


def where_to_show(output: str | None, organize: str | None) -> tuple[str | None, bool]:
    """The output folder (None: no files) and whether to show windows.

    Windows when there is a screen and no ``--output``; files otherwise.
    """
    windows = output is None and display_available()
    if output is None and not windows:
        print("[INFO] no display: writing the montages to files instead of windows")
        return "output", False
    if output is None and organize:
        return "output", windows  # the person folders need a home even when windows show the montages
    return output, windows


def report_quality(data, labels: np.ndarray, labels_file: str, dataset_root: str | None, all_faces: bool) -> None:
    """Print pairwise / BCubed / NMI / ARI of ``labels`` against the identities in ``labels_file``."""
    from facecluster.cluster.evaluation import evaluate, format_report, primary_face_labels, read_labels

    paths = [d["imagePath"] for d in data]
    root = dataset_root or (os.path.commonpath([os.path.dirname(p) or "." for p in paths]) if paths else ".")
    try:
        identities = read_labels(labels_file, paths, root)
        if not all_faces:
            identities = primary_face_labels(data, identities)
        metrics = evaluate(labels, identities)
    except ValueError as problem:
        raise cli.UsageError(f"--labels {labels_file}: {problem}") from None
    print("[INFO] quality against " + ("folder names" if labels_file == "folders" else labels_file) + ":")
    for line in format_report(metrics).splitlines():
        print(f"[INFO]   {line}")


def list_people(store_path: str | None) -> int:
    """Print the stored people, one a line: ``person_03  Ada Lovelace  12 faces``."""
    if store_path is None:
        raise cli.UsageError("--list-people needs the people store (not --people-store none)")
    try:
        stored = people.stored_people(store_path)
    except ValueError as problem:
        raise cli.UsageError(str(problem)) from None
    for person in stored.values():
        seen = "hidden: not seen in the last run" if person.hidden else f"{person.faces} faces"
        if person.merged_into is not None:
            seen = f"shown as person_{person.merged_into:02d} ({person.faces} faces in the last run)"
        source = f" (from {person.name_source})" if person.name else ""
        print(f"person_{person.id:02d}\t{person.name or '-'}{source}\t{seen}")
    return 0


def run() -> None:
    """The ``facecluster-cluster`` command (``pip install .``)."""
    cli.run(main, known_errors=(ValueError, OSError))


if __name__ == "__main__":
    run()
