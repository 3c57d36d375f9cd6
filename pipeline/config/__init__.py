"""Configuration: the one settings object (environment variables, then CLI flags), log formatting and
the alert policy file. The bottom of the I/O shell: it imports nothing of Kafka or the web servers.
"""
