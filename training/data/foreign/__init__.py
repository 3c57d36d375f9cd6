"""Turn a team's own product history into a churnwatch event log (training on it in one step is
:mod:`training.runs.from_foreign`).

Most teams that want churn warnings already have two tables, in their own shapes: a **usage log**
(account id, event time, event type — CSV, Parquet or JSONL, with their own column names and date
formats) and either **churn dates** (``account,churn_date``) or **subscriptions** (``account,start,end``:
an end on or before the data's "as of" time is a churn, an open end is an active account). Purchase logs
have neither: for them churn is *inactivity* (``inactive_days``, see below). This package
maps those onto the event contract so they run through the *same* feature code and trainer as native
churnwatch data (see ``docs/foreign-logs.md``):

* every usage row -> an ``interactions`` event; its type goes through an optional type map
  (``signin -> login``) and unknown types are kept as they are: the pipeline counts them generically.
  A type-map target must be a built-in type or one of the log's own types (merging two of them is
  fine); anything else is a typo that would silently create a type nobody sends, so it is refused;
* every account -> one ``customers`` ``profile``: signup = subscription start, or the first usage row
  when only churn dates are known; tier ``standard`` unless a tier column is named;
* every churn -> a ``churned`` outcome at its date (the label); a subscription that starts again after a
  gap -> ``renewed`` (a win-back), which the labels already understand.
* without a churn table, ``inactive_days=N``: a gap of N days or more after a usage row -> ``churned`` at
  that row + 1 day, and the row that ends the gap, if any -> ``renewed`` (:mod:`training.data.foreign.inactivity`).

Decisions that matter for a sound model, and why:

* The data window is the usage log's span. Outcomes outside it are left out (and counted): a churn
  before the first usage row says nothing the features can see, and one after the last row would
  stretch the log's end so every account looks silent in the final weeks.
* A profile is stamped no earlier than the first usage row (its ``signup_ts`` keeps the true signup),
  otherwise a subscription from years ago would start the observation grid years before any usage.
* Event ids are deterministic (a hash of the account, time, type and row number), so converting the
  same files twice gives the same log, and appending rows keeps the ids of the old ones.
* Times: ISO-8601, epoch numbers, ``YYYYMMDD`` and d/m/y or m/d/y with the order read off the column
  (:mod:`training.data.foreign.times`).

Bad rows are counted by reason like the event-log readers do; only whole-file problems (missing
columns, unreadable files, undecidable date order, a type-map target that exists nowhere) raise
:class:`~training.data.foreign.mapping.ForeignLogError`, in one line. A bad *optional* cell (duration,
user id, value) never costs the row: the usage row still says the account was active, so it is kept
without that field and the cell is counted under ``dropped``.

The modules: ``mapping`` (what the team's columns mean), ``times``, ``cells`` (one cell -> a contract
value), ``usage`` (usage rows -> interactions), ``accounts`` (churn table -> outcomes), ``inactivity``
(churn from silence), ``outcomes`` (profiles and outcomes), ``stats`` and ``convert``, which runs them.
"""
