"""A trained detector on live inputs: video files, streams and cameras (:mod:`.video`), and an
HTTP app with a browser page (:mod:`.app`, extra ``[serve]``). Above ``infer``/``report``, below
``api``: predictions come in as a callable, so any detector (PyTorch or ONNX) serves alike."""
