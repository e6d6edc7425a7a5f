"""Export to deployment formats (ONNX), each export checked against the PyTorch model."""
