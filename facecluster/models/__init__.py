"""The model files and what is built from them: dlib's models loaded once per process, onnxruntime settings, built models kept on disk."""
