"""List endpoints page with `?limit=&offset=`: DRF's, strict about what it is given."""

from rest_framework.pagination import LimitOffsetPagination

from lab import params


class LimitOffset(LimitOffsetPagination):
    """A `limit` or `offset` that is not a whole number (limit at least 1, offset at least 0 and within
    64 bits) is a 400 naming it; a limit above `max_limit`, however large, is served as `max_limit`
    (DRF's rule), so no huge number reaches the database."""

    max_limit = 1000

    def get_limit(self, request):
        limit = params.integer(request.query_params, self.limit_query_param, min_value=1, max_value=None)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request):
        return params.integer(request.query_params, self.offset_query_param) or 0
