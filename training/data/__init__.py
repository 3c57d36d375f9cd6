"""Event logs: reading them (JSONL, CSV, Parquet, a team's own usage tables) through the event
contract, spooling large ones to disk, exporting the input topics, and writing logs back.
"""
