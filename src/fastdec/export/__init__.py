"""Exports of a trained tokenizer to other runtimes."""
