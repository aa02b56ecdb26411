"""Declaring functions: the router they are registered on, the app that collects them,
and the context each invocation gets."""
