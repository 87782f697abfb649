"""Errors that are the user's to fix: reported in one line with exit status 2, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or configuration; the message says what is wrong and where."""

    exit_status = 2
