"""The CSM inbox: a small web page listing the open churn alerts, with an Acknowledge button.

The page reads from the **alert topic**, not from a worker, so it shows the alerts of every worker
however many run, and it needs no state of its own. Acknowledging writes an ordinary ``alert_ack``
outcome event, the same record a CSM's own tooling would write, so the workers close their open alert
exactly as they do for any other acknowledgement, and every other inbox sees it too.

* :mod:`apps.inbox.view` — the open-alert view (pure): what is open, per customer, riskiest first;
  the acknowledgement event;
* :mod:`apps.inbox.page` — the page's HTML, from the autoescaping template in ``templates/`` with the
  style and script of ``static/``;
* :mod:`apps.inbox.topics` — following the alert and outcome topics, writing acknowledgements;
* :mod:`apps.inbox.server` — the aiohttp app behind the sign-in guard, and ``churnwatch inbox``.
"""
