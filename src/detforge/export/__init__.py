"""Export to deployment formats (ONNX, OpenVINO IR), each checked against the PyTorch model."""
