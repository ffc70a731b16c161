"""Whole-number parameters of a request (a query string or a form body), checked the same way by
pages and the API: a value that is not a whole number in range is a ConfigError naming the parameter
(a 400), never a ValueError or an integer too large for the database."""

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpResponseBadRequest

from training.config import ConfigError

ID_MAX = 2**63 - 1
"""The largest id (and seq) the database stores (a 64-bit integer); past it no row exists."""


def integer(data, name: str, *, min_value: int | None = 0, max_value: int | None = ID_MAX,
            required: bool = False) -> int | None:
    """`data[name]` as an int in [min_value, max_value] (None: unbounded); None when absent or blank,
    unless `required`."""
    field = forms.IntegerField(min_value=min_value, max_value=max_value, required=required)
    try:
        return field.clean(data.get(name))
    except ValidationError as exc:
        raise ConfigError(name, " ".join(exc.messages)) from None


def bad_request(exc: ConfigError) -> HttpResponseBadRequest:
    """A page's answer to a bad parameter: 400 with the parameter and what is wrong with it."""
    return HttpResponseBadRequest(f"{exc.field}: {exc.message}", content_type="text/plain; charset=utf-8")
