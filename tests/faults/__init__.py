"""Fault tests: database restarts and outages, SIGKILLed workers, hostile input."""
