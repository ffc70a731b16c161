"""The one error every reader and validator raises: where (file, line, field) and why."""

from __future__ import annotations

from typing import Any

from training.config_checks import ConfigError


class DatasetError(ConfigError):
    """A dataset the lab cannot use, or one record of it.

    `file` is the name shown to the user (an archive member reads `corpus.zip:docs/a.txt`), `line`
    the 1-based line (a row number for Parquet), `field` the record's field path such as
    `messages[2].role`; any of them is None when it does not apply.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(field or "dataset", message)
        self.file = file
        self.line = line
        self.field: str | None = field  # type: ignore[assignment]  # ConfigError's is never None
        self.args = (str(self),)

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f'field "{self.field}"')
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def located(self, file: str, line: int | None) -> DatasetError:
        """This error with the file and line of the record it was found in, unless it has them."""
        return type(self)(
            self.message,
            file=self.file or file,
            line=self.line if self.line is not None else line,
            field=self.field,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "text": str(self),
        }


class ArchiveRefused(DatasetError):
    """The archive as a whole is refused (an unsafe member, a possible zip bomb): no member of it
    is worth reading on, unlike a bad record, after which validation goes on to the next one."""


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages such as `must be a string, not a number`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
