"""Recurring campaigns (see rea_cli/app/schedules.py)."""
