"""The tutorial's two commands, defaults only, on a collection like the tutorial's that is not the demo.

Five LFW people with 25 photos each (not the demo's five) and four people seen
once, in person folders as a user would have them: ``encode_faces.py`` then
``cluster_faces.py`` (DBSCAN, eps 0.5, min_samples 5) must find the five.
Averaged with their mirror images and not rescaled, the encodings put more
look-alike pairs under 0.5; the rescaling (facecluster/embed/mirror_scale.py)
keeps the tutorial's threshold meaning what it did (benchmarks/tutorial_sets.py
measures 200 such draws and five_celebs).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from conftest import run_script

# Five people, their first 25 photos, where the regression shows: face_recognition's own encodings
# (--no-mirror) find the five (F1 1.000), the mirror pass's plain average merges two (4 people, F1 0.828), and
# the rescaled average finds the five again.  benchmarks/tutorial_sets.py measures 200 such draws.
PEOPLE = ("Bill_Clinton", "Kofi_Annan", "Ricardo_Lagos", "Roh_Moo-hyun", "Vicente_Fox")
SINGLETONS = 4  # the first four LFW people with one photo after the demo's four


def test_tutorial_commands_at_defaults_find_the_five_people(tmp_path: Path, lfw: Path) -> None:
    dataset = tmp_path / "dataset"
    for person in PEOPLE:
        (dataset / person).mkdir(parents=True)
        for photo in sorted((lfw / person).glob("*.jpg"))[:25]:
            shutil.copy(photo, dataset / person / photo.name)
    once = [p for p in sorted(lfw.iterdir()) if p.is_dir() and len(list(p.glob("*.jpg"))) == 1][4:4 + SINGLETONS]
    for person in once:
        shutil.copytree(person, dataset / person.name)
    encodings = tmp_path / "encodings.pickle"
    encoded = run_script("encode_faces.py", "--dataset", str(dataset), "--encodings", str(encodings))
    assert encoded.returncode == 0, encoded.stderr
    clustered = run_script("cluster_faces.py", "--encodings", str(encodings), "--output", str(tmp_path / "output"),
                           "--labels", "folders", "--dataset-root", str(dataset))
    assert clustered.returncode == 0, clustered.stderr
    assert "[INFO] # unique faces: 5" in clustered.stdout
    f1 = float(re.search(r"pairwise: .* F1 ([0-9.]+)", clustered.stdout).group(1))
    assert f1 >= 0.99, clustered.stdout
