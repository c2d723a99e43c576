"""Adapters to other libraries; each module imports its library and fails clearly without it."""
