"""Request bodies in JSON, parsed with the lab's depth limit: a deeply nested body is a 400."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

from training.json_limits import loads


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser through `training.json_limits.loads` (its own would raise RecursionError)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            return loads(stream.read().decode(encoding), parse_constant=strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None

