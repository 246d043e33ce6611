"""The intake examples are data: merge_by_hand.py is run by tests/test_sources.py, never
collected (as a doctest module it would run at import, from the wrong folder)."""

collect_ignore = ["multi_file/merge_by_hand.py"]
