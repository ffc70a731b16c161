from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from lab.datasets.ingest import IngestError
from training.config import ConfigError


def exception_handler(exc, context):
    """Bad input is a 400 naming the field (and file and line); never a 500."""
    if isinstance(exc, ConfigError):
        return Response({"field": exc.field, "error": exc.message}, status=400)
    if isinstance(exc, IngestError):
        return Response({"field": exc.field, "file": exc.filename, "line": exc.line, "error": exc.message}, status=400)
    return drf_exception_handler(exc, context)
