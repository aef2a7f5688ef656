"""The project's detector + encoder run in this one process (no worker pool): the GPU's own rate.

python .gpu/inproc_encode.py OUT.pickle BATCH [numpy|dlib]: every photo under .gpu/photos, in
batches of BATCH photos through Method.find_faces (dlib's CNN, batched, on CUDA where dlib has
it); two passes (the first includes cuDNN's set-up), the second's records written in the
tutorial's format for compare.py.
"""
from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, ".")
from facecluster.detect.detectors import choose_detector  # noqa: E402
from facecluster.embed.encoders import choose_encoder  # noqa: E402
from facecluster.run.pipeline import Method  # noqa: E402
from facecluster.sources.images import load_image  # noqa: E402


def main() -> None:
    out, batch = sys.argv[1], int(sys.argv[2])
    encoder_name = sys.argv[3] if len(sys.argv) > 3 else "numpy"
    paths = sorted(str(p) for p in Path(".gpu/photos").rglob("*") if p.is_file())
    detector, why = choose_detector("cnn", batch_size=batch)
    encoder, how = choose_encoder(encoder_name)
    print(f"[INPROC] detector {detector.name} ({why}); encoder {encoder_name} ({how})")
    method = Method(detector, encoder)
    started = time.perf_counter()
    method.preload()
    rgbs = {p: load_image(p).rgb for p in paths}
    print(f"[INPROC] models + {len(paths)} photos loaded in {time.perf_counter() - started:.2f}s")
    for attempt in (1, 2):
        started = time.perf_counter()
        records = []
        for i in range(0, len(paths), batch):
            chunk = paths[i:i + batch]
            for path, faces in zip(chunk, method.find_faces([rgbs[p] for p in chunk])):
                records += [{"imagePath": path, "loc": tuple(face.box), "encoding": face.encoding} for face in faces]
        took = time.perf_counter() - started
        print(f"[INPROC] pass {attempt}: {len(paths)} photos, {len(records)} faces, {took:.2f}s, "
              f"{len(paths) / took:.1f} photos/s (batch {batch}, one process)")
    with open(out, "wb") as f:
        pickle.dump(records, f)
    os.sync()


if __name__ == "__main__":
    main()
