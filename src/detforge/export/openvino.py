"""``best.pt`` -> ``best.xml`` + ``best.bin`` (OpenVINO IR), checked against PyTorch before kept.

Built on the ONNX export: the graph :func:`~detforge.export.onnx.write_onnx` writes (same
inputs, outputs and NMS step) is converted by ``openvino.convert_model`` and saved in fp32
(``compress_to_fp16=False``: the IR holds the weights PyTorch has). Its metadata go into the
IR's rt_info under ``detforge/<key>``, so the ``.xml`` is as self-describing as the ``.onnx``.
The IR is then run through OpenVINO's CPU runtime in the same parity check as an ONNX file;
the intermediate ONNX file is not kept.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..config import RunConfig
from ..config.fields import ConfigError
from ..infer.runtime import META, OpenVinoModel
from .onnx import ExportResult, check_settings, keep_if_parity, write_onnx

__all__ = ["export_openvino"]


def export_openvino(
    cfg: RunConfig,
    weights: str | os.PathLike,
    out: str | os.PathLike | None = None,
    imgsz: int | None = None,
    dynamic: bool = True,
    nms: bool = False,
    half: bool = False,
    opset: int = 17,
    simplify: bool = False,
    images: list[Path] | None = None,
    n_images: int = 8,
    batch: int = 4,
) -> ExportResult:
    """Export ``weights`` to an OpenVINO IR and check it (arguments as
    :func:`~detforge.export.onnx.export_onnx`; ``out`` ends in ``.xml``, the ``.bin`` beside)."""
    if importlib.util.find_spec("openvino") is None:
        raise ConfigError("format=openvino needs openvino: pip install 'detforge[openvino]'")
    check_settings(half, opset, simplify)
    target = Path(out) if out else Path(weights).with_suffix(".xml")
    if target.suffix.lower() != ".xml":
        raise ConfigError(f"out: the file name must end in .xml (format=openvino), got {target}")
    onnx_tmp = target.with_name(f".{target.stem}.tmp.onnx")
    xml_tmp = target.with_name(f".{target.stem}.tmp.xml")
    bin_tmp = xml_tmp.with_suffix(".bin")
    try:
        graph = write_onnx(cfg, weights, onnx_tmp, imgsz, dynamic, nms, half, opset, simplify)
        import openvino as ov

        model = ov.convert_model(str(onnx_tmp))
        for key, value in graph.meta.items():
            model.set_rt_info(value, [META[:-1], key])
        ov.save_model(model, str(xml_tmp), compress_to_fp16=False)
        moves = {xml_tmp: target, bin_tmp: target.with_suffix(".bin")}
        return keep_if_parity(cfg, graph, OpenVinoModel(xml_tmp), moves, "openvino", dynamic,
                              images, n_images, batch)  # fmt: skip
    finally:  # an error on the way leaves no temporary file behind
        for tmp in (onnx_tmp, xml_tmp, bin_tmp):
            tmp.unlink(missing_ok=True)
