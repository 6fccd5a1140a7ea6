r"""Parameters and result parts the FPGA tools share, described once (an LLM reads these to pick arguments)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts
from physagent.tools._errors import ToolInputError
from physagent.tools.fpga._hls import HlsSettings
from physagent.tools.fpga._precision import PRECISION_PATTERN, parse_precision

__all__ = [
    "Backend", "ClockPeriod", "IoType", "LayerPrecision", "LayerPrecisionMap", "MaxEvents", "ModelRef", "Part",
    "PrecisionText", "ProjectRef", "ReuseFactor", "Strategy", "check_precision", "make_settings"]

ModelRef = Annotated[str, Accepts(("model",)), Field(pattern=ARTIFACT_ID_PATTERN)]
ProjectRef = Annotated[str, Accepts(("hls_project",)), Field(pattern=ARTIFACT_ID_PATTERN)]
PrecisionText = Annotated[str, Field(pattern=PRECISION_PATTERN, max_length=64)]
Backend = Literal["Vitis", "Vivado"]
Strategy = Literal["latency", "resource"]
IoType = Literal["io_parallel", "io_stream"]
Part = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{4,40}$", description=(
    "FPGA part number (default the hls4ml benchmark's Virtex UltraScale+ VU13P).")
)]
ClockPeriod = Annotated[float, Field(gt=0.5, le=100.0, description="Target clock period in ns (5 ns = 200 MHz).")]
ReuseFactor = Annotated[int, Field(ge=1, le=4096, description=(
    "Multiplications sharing one multiplier (1: fully parallel, lowest latency; larger: fewer DSPs)."))]
LayerPrecisionMap = Annotated[dict[str, PrecisionText] | None, Field(description=(
    "Per-layer overrides by hls4ml layer name (see layers in the result), e.g. {'layers_0': 'ap_fixed<18,8>'} "
    "(weight, bias, result) or {'layers_0.result': 'ap_fixed<12,6>'}."))]
MaxEvents = Annotated[int, Field(ge=10, le=1_000_000, description=(
    "At most this many events (the first of the split) are emulated; the C simulation runs ~10^3–10^4 events/s."))]


class LayerPrecision(BaseModel):
    """The fixed-point types of one layer of the generated firmware."""

    name: str = Field(description="hls4ml layer name (use it in layer_precision).")
    layer_type: str = Field(description="hls4ml layer class, e.g. Dense, Activation, PointwiseConv1D.")
    precision: dict[str, str] = Field(description="Type per quantity: weight, bias, result, accum …")
    reuse_factor: int = Field(description="Reuse factor of the layer.")


def check_precision(tool: str, param: str, text: str) -> str:
    """``text`` if it parses as a fixed-point type, else a ToolInputError naming the parameter."""
    try:
        parse_precision(text)
    except ValueError as exc:
        raise ToolInputError.for_param(tool, param, text, f"{exc}.") from None
    return text.strip()


def make_settings(tool: str, precision: str, layer_precision: dict[str, str] | None, **chosen: Any) -> HlsSettings:
    """The settings of one project, with every precision checked."""
    overrides = {key: check_precision(tool, "layer_precision", value) for key, value in (layer_precision or {}).items()}
    return HlsSettings(precision=check_precision(tool, "precision", precision), layer_precision=overrides, **chosen)
