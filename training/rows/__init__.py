"""Point-in-time rows: churn labels from outcome events, every customer's state at chosen times from
exactly the events before them, and the training dataset built from those snapshots.
"""
