"""Placeholder: filled in this session (issue 18)."""
