"""Kafka clients only: the security block mapped onto each client library, the bounded connection
check, creating and checking topics, and reading output topics from outside the worker.
"""
