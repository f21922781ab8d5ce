"""The project's user-facing error type, shared by the library, the CLI and the dashboard."""


class UserError(Exception):
    """A problem with the user's input or environment; its message is shown as is (CLI: exit 2, app: error box)."""
