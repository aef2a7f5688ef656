"""The sample ``dataset/`` for the demo: 129 LFW photos, as in the tutorial.

Five people with 25 photos each plus four people with one photo, chosen by
sorted name from Labeled Faces in the Wild (deep-funneled), copied as
``00000000.jpg ... 00000128.jpg`` in shuffled order so that no file name gives
a person away.  The answer key (``path,identity``) is written *outside* the
dataset, in the format ``cluster_faces.py --labels`` reads.

The LFW copy is found in this order: ``$LFW_DIR``; ``../shared/datasets/lfw-deepfunneled``
beside the project; a cached download of the official archive, fetched once
and checked against its published MD5.

Reference: G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller, "Labeled Faces in
the Wild", UMass Amherst TR 07-49, 2007; deep funneling: Huang et al., NIPS 2012.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

LFW_URL = "http://vis-www.cs.umass.edu/lfw/lfw-deepfunneled.tgz"
LFW_MD5 = "68331da3eb755a505a502b5aacb3c201"  # published beside the archive
LFW_PAIRS_URL = "http://vis-www.cs.umass.edu/lfw/pairs.txt"  # View 2: 10 folds of 300 + 300 pairs
LFW_PAIRS_MD5 = "9f1ba174e4e1c508ff7cdf10ac338a7d"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_LFW = PROJECT_ROOT.parent / "shared" / "datasets" / "lfw-deepfunneled"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facecluster"

PEOPLE, PHOTOS_EACH, SINGLETONS, SHUFFLE_SEED = 5, 25, 4, 42
# The known-people folder of the walk-through: this many *other* LFW photos of
# each demo person but the last, who is left out to show a stranger stays unnamed.
KNOWN_EACH = 3


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_checked(url: str, md5: str, target: Path, about: str = "") -> Path:
    """``target``, downloaded from ``url`` once and kept only if its MD5 is ``md5``.

    A file already there with the right checksum is not fetched again; a wrong
    download raises :class:`RuntimeError` and leaves nothing behind.
    """
    if target.exists() and md5_of(target) == md5:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    print(f"[INFO] downloading {url}{about}...")
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)
    if md5_of(partial) != md5:
        partial.unlink()
        raise RuntimeError(f"{url}: checksum mismatch (expected MD5 {md5}); nothing was kept")
    partial.replace(target)
    return target


def download_lfw(cache_dir: Path = CACHE_DIR, url: str = LFW_URL, md5: str = LFW_MD5) -> Path:
    """Fetch and unpack the official archive once; return its ``lfw-deepfunneled`` folder."""
    folder = cache_dir / "lfw-deepfunneled"
    if folder.is_dir():
        return folder
    archive = fetch_checked(url, md5, cache_dir / "lfw-deepfunneled.tgz", " (about 110 MB, once)")
    with tarfile.open(archive) as tar:
        tar.extractall(cache_dir, filter="data")
    return folder


def find_lfw_pairs(lfw: Path, cache_dir: Path = CACHE_DIR) -> Path:
    """LFW's verification pairs (``pairs.txt``): beside the photos, else the official file, cached."""
    local = lfw / "pairs.txt"
    if local.is_file():
        return local
    return fetch_checked(LFW_PAIRS_URL, LFW_PAIRS_MD5, cache_dir / "lfw-pairs.txt")


def find_lfw() -> Path:
    """A local LFW deep-funneled folder, downloading it only when none is configured."""
    configured = os.environ.get("LFW_DIR")
    if configured:
        if not Path(configured).is_dir():
            raise RuntimeError(f"LFW_DIR={configured} is not a folder")
        return Path(configured)
    if SHARED_LFW.is_dir():
        return SHARED_LFW
    return download_lfw()


def choose_photos(lfw: Path) -> list[tuple[Path, str]]:
    """The demo subset: (photo, identity) pairs, deterministic by sorted names."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    chosen: list[tuple[Path, str]] = []
    many = [p for p in people if len(list(p.glob("*.jpg"))) >= PHOTOS_EACH][:PEOPLE]
    singles = [p for p in people if len(list(p.glob("*.jpg"))) == 1][:SINGLETONS]
    for person in many:
        chosen += [(photo, person.name) for photo in sorted(person.glob("*.jpg"))[:PHOTOS_EACH]]
    for person in singles:
        chosen += [(photo, person.name) for photo in sorted(person.glob("*.jpg"))]
    return chosen


def build_dataset(lfw: Path, dataset: Path, key_file: Path) -> int:
    """Fill ``dataset`` with the shuffled demo photos and write the answer key."""
    photos = choose_photos(lfw)
    random.Random(SHUFFLE_SEED).shuffle(photos)
    dataset.mkdir(parents=True, exist_ok=True)
    for old in dataset.glob("*.jpg"):
        old.unlink()
    rows = []
    for index, (photo, identity) in enumerate(photos):
        name = f"{index:08d}.jpg"
        shutil.copyfile(photo, dataset / name)
        rows.append((name, identity))
    with open(key_file, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "identity"])
        writer.writerows(rows)
    return len(rows)


def build_known(lfw: Path, known: Path) -> int:
    """Fill ``known/<Person_Name>/`` with :data:`KNOWN_EACH` LFW photos of each demo person (but the
    last) that are not in the demo dataset; returns the photo count."""
    people = [p for p in sorted(p for p in lfw.iterdir() if p.is_dir())
              if len(list(p.glob("*.jpg"))) >= PHOTOS_EACH][:PEOPLE]
    count = 0
    for person in people[:-1]:
        folder = known / person.name
        folder.mkdir(parents=True, exist_ok=True)
        for photo in sorted(person.glob("*.jpg"))[PHOTOS_EACH:][:KNOWN_EACH]:
            shutil.copyfile(photo, folder / photo.name)
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the demo dataset/ from LFW.")
    parser.add_argument("--dataset", default="dataset", help="folder to fill (default: dataset)")
    parser.add_argument("--key", default="dataset.key.csv", help="answer key, kept outside the dataset")
    parser.add_argument("--known", default=None, metavar="DIR",
                        help="instead, build the walk-through's known-people folder here (other photos of 4 of "
                             "the demo's 5 people)")
    args = parser.parse_args(argv)
    try:
        lfw = find_lfw()
        if args.known:
            count = build_known(lfw, Path(args.known))
            print(f"[INFO] known people: {count} photos from {lfw} in {args.known}/")
            return 0
        count = build_dataset(lfw, Path(args.dataset), Path(args.key))
    except (OSError, RuntimeError, tarfile.TarError) as error:
        print(f"[ERROR] cannot build the sample dataset: {error}", file=sys.stderr)
        return 2
    print(f"[INFO] sample dataset: {count} photos from {lfw} in {args.dataset}/, answer key in {args.key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
