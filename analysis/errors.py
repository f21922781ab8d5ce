"""The project's user-facing error type, shared by the library, the CLI and the dashboard."""


class UserError(Exception):
    """A problem with the user's input or environment; its message is shown as is (CLI: exit 2, app: error box)."""


def one_line(exc: object, limit: int = 300, *, with_type: bool = False) -> str:
    """`exc` (an exception or any text) on one line of at most `limit` characters, for a message quoting it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if with_type and isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
