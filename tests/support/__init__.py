"""Helpers shared by test folders."""
