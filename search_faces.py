#!/usr/bin/env python3
"""Find every face of the person in a query photo among the encoded faces.

USAGE
    python search_faces.py --encodings encodings.pickle --query ada.jpg --output found
    python search_faces.py -e encodings.pickle -q known/Ada_Lovelace -o found --top 10
"""

import argparse
import os
import time

from facecluster import cli
from facecluster.people.queries import read_queries
from facecluster.people.results import write_matches_csv, write_search_page
from facecluster.people.search import SAME_PERSON, open_index, search
from facecluster.present.output import check_output, mark
from facecluster.store import EncodingsError

# construct the argument parser
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("-e", "--encodings", required=True, help="path to serialized db of facial encodings")
ap.add_argument("-q", "--query", action="append", required=True, metavar="PHOTO|FOLDER",
                help="a photo of the person (its largest face), or a folder of photos of one person (repeatable: "
                     "one search each)")
ap.add_argument("-o", "--output", required=True, help="write matches.csv and index.html here")
ap.add_argument("--top", type=int, default=0, help="also list the N nearest faces, whoever they are (marked 'nearest')")
ap.add_argument("--all-faces", action="store_true", help="look for every face of a query photo, not just the largest")
ap.add_argument("-t", "--threshold", type=float, default=SAME_PERSON,
                help=f"faces closer than this are the same person (default {SAME_PERSON})")
ap.add_argument("--overwrite", action="store_true",
                help="write into an --output folder that holds files facecluster did not write")


def main() -> int:
    args = vars(ap.parse_args())
    if args["top"] < 0 or not 0 < args["threshold"] < 2:
        raise cli.UsageError("--top must be 0 or more and --threshold between 0 and 2")
    problem = check_output(args["output"], args["overwrite"])
    if problem:  # a read-only, full or someone else's folder: said now, not after the search
        raise cli.UsageError(problem)

    # encode the query photos as encode_faces.py does
    print("[INFO] encoding the query...")
    queries = read_queries(args["query"], args["all_faces"], cli.warning)

    # load the encodings into the index the clustering's neighbour search uses
    print("[INFO] loading encodings...")
    started = time.perf_counter()
    try:
        index = open_index(args["encodings"])
    except EncodingsError as problem:
        raise cli.UsageError(f"{args['encodings']}: {problem}") from None
    kept = {"read": ", index read from beside it", "written": ", index kept beside it"}.get(index.saved or "", "")
    print(f"[INFO] {len(index.records):,} faces ({'exact' if index.exact else 'inverted-file index'}{kept}) "
          f"in {time.perf_counter() - started:.1f} s")

    # search, then write matches.csv and the page
    found = [(query, search(index, query.encodings, threshold=args["threshold"], top=args["top"])) for query in queries]
    os.makedirs(args["output"], exist_ok=True)
    mark(args["output"])
    write_matches_csv(os.path.join(args["output"], "matches.csv"), index.records, found)
    write_search_page(args["output"], index.records, found)
    for query, matches in found:
        print(f"[INFO] {query.name}: {sum(m.same for m in matches):,} faces of the same person")
    print("[INFO] # matches: {}".format(sum(m.same for _, matches in found for m in matches)))
    print(f"[INFO] wrote matches.csv and index.html to {args['output']}/")
    return 0


def run() -> None:
    """The ``facecluster-search`` command (``pip install .``)."""
    cli.run(main, known_errors=(ValueError, OSError))


if __name__ == "__main__":
    run()
