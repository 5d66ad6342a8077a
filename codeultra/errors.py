"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""


class UserError(Exception):
    """Bad input, bad config or an unreachable resource: the user can fix it."""

    exit_code = 2


class BudgetExhausted(UserError):
    """The run's spending cap was reached; finished cells are kept, a rerun resumes."""

    exit_code = 3
