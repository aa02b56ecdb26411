"""Helpers shared by more than one function family."""
