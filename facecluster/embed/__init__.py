"""From a face to its 128-d encoding: dlib's ResNet, in dlib or on onnxruntime (the same weights), with the mirror pass."""
