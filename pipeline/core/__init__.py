"""The pure core: what an event is, what is remembered about a customer, and when a score becomes an alert.

No Faust, Kafka, files or wall clocks: every function here is given what it needs, so the stream worker,
training and the offline alert replay run the same code, and unit tests need no broker.
"""
