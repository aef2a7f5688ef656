"""Finding faces: dlib's HOG detector, its CNN (dlib's own with CUDA, or the same network on onnxruntime), and the geometry around the CNN."""
