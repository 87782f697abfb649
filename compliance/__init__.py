"""Scheduled compliance jobs: tag policies run on a schedule, with discovery and drift."""
