"""Callbacks that Lightning does not already ship."""
