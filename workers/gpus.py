"""What a worker's GPUs read through NVML (nvidia-ml-py): name, memory, utilisation, temperature, power.

NVML ignores CUDA_VISIBLE_DEVICES and may reorder devices across reboots, so each device carries
its UUID. A host without the NVML library (a CPU-only worker) reads no devices and says why; a
field a device does not support reads None, the others still come.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pynvml


def _field(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except pynvml.NVMLError:  # NotSupported, NoPermission, FunctionNotFound (old drivers): per field
        return None


def _temperature(handle) -> int | None:
    try:
        return pynvml.nvmlDeviceGetTemperatureV(handle, pynvml.NVML_TEMPERATURE_GPU)
    except pynvml.NVMLError:
        return _field(lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))


def _device(index: int) -> dict[str, Any]:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = _field(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
    utilisation = _field(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
    power_mw = _field(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
    return {
        "index": index,
        "uuid": _field(lambda: pynvml.nvmlDeviceGetUUID(handle)),
        "name": _field(lambda: pynvml.nvmlDeviceGetName(handle)),
        "memory_used": getattr(memory, "used", None),
        "memory_total": getattr(memory, "total", None),
        "utilisation": getattr(utilisation, "gpu", None),
        "temperature": _temperature(handle),
        "power_w": None if power_mw is None else power_mw / 1000,
    }


def read_devices() -> tuple[list[dict[str, Any]], str]:
    """(the devices, "") or ([], why none could be read)."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"no GPU read: {exc}"
    try:
        return [_device(i) for i in range(pynvml.nvmlDeviceGetCount())], ""
    except pynvml.NVMLError as exc:
        return [], f"NVML failed: {exc}"
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
