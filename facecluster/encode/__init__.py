"""From pictures to 128-d face encodings: detectors, encoders and the run that drives them."""
