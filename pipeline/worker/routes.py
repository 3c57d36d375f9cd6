"""The worker web's routes: the CSM customer view (answered by the worker owning the customer), liveness,
readiness and sign-in, and which class of request each path is (:mod:`pipeline.web.webguard`).

``GET /customers/{id}/`` is answered locally when this worker owns the customer's partition, else
forwarded to the owner (Faust's router knows who that is); while nobody can answer yet (a takeover, a
restore) the answer is a 503 with a JSON ``reason``, never a stack trace.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import faust

from pipeline.core.contract import format_ts
from pipeline.core.decisions import vectorizer
from pipeline.core.features import CustomerState
from pipeline.core.reasons import top_reasons
from pipeline.web import webguard
from pipeline.web.webauth import WebAuth

if TYPE_CHECKING:
    from pipeline.worker.batch import BatchProcessor

log = logging.getLogger("churnwatch.worker")


def web_route_class(path: str) -> str:
    """The worker web's request classes (:mod:`pipeline.web.webguard`): health probes open, the CSM view
    and sign-in as on the inbox, and everything else — Faust's ``/router/``, ``/table/`` and index —
    internal, for the other workers of the group only."""
    if path in ("/health", "/ready"):
        return webguard.PROBE
    if path in ("/login", "/logout"):
        return webguard.LOGIN
    if path.startswith("/customers/"):
        return webguard.USER
    return webguard.INTERNAL


class CustomerRoutes:
    """The customer view of one worker: its own customers from its state, the others' from their owner."""

    def __init__(self, core: "BatchProcessor", app: faust.App, webauth: WebAuth, route_topic: Any) -> None:
        self.core = core
        self.app = app
        self.webauth = webauth
        #: requests for a customer go to the worker owning its partition of this (co-partitioned) topic
        self.route_topic = route_topic

    async def route_customer(self, request: Any, customer_id: str) -> tuple[int, dict[str, Any]]:
        """(status, body) for the customer view: local, forwarded to the owner, or 503 while nobody can
        answer for the customer yet (takeover, recovery) — never a stack trace."""
        try:
            dest = self.app.router.external_topic_key_store(self.route_topic, customer_id)
        except Exception:
            return 503, {"error": "no worker owns this customer's partition yet (rebalancing)", "reason": "rebalancing"}
        router = self.app.router
        if router._urlident(dest) == router._urlident(self.app.conf.canonical_url):
            return self.local_customer(customer_id)
        try:
            import aiohttp

            url = request.url.with_host(dest.host).with_port(int(dest.port or 80))
            headers = self.webauth.forward_headers(request.get(webguard.IDENTITY))
            async with self.app.http_client.get(str(url), headers=headers,
                                                timeout=aiohttp.ClientTimeout(total=5)) as resp:
                body = await resp.json(content_type=None)
                return resp.status, body
        except Exception as exc:
            return 503, {"error": f"the worker owning this customer ({dest}) did not answer: {type(exc).__name__}",
                         "reason": "owner_unreachable"}

    def local_customer(self, customer_id: str) -> tuple[int, dict[str, Any]]:
        from pipeline.kafka.partitioner import partitioner

        partition = partitioner(self.core.settings.partitions)(customer_id)
        if partition not in self.core.store.parts or self.core.health.recovering:
            return 503, {"error": f"partition {partition} is being restored on this worker", "reason": "recovering"}
        try:
            body = self.customer_view(customer_id)
        except Exception as exc:
            log.exception("customer view of %r failed", customer_id)
            return 503, {"error": f"customer view failed: {type(exc).__name__}", "reason": "internal_error"}
        if body is None:
            return 404, {"error": f"customer {customer_id} not found"}
        return 200, body

    def customer_view(self, customer_id: str) -> dict[str, Any] | None:
        """Current features, score, reasons and alert history of one customer, as of its newest event."""
        raw = self.core.store.find(customer_id.encode())
        if raw is None:
            return None
        st = CustomerState.from_bytes(raw)
        model = self.core.models.model
        names, vec = vectorizer(model)
        row = vec(st, st.last_ms)
        body: dict[str, Any] = {
            "customer_id": st.customer_id, "tier": st.tier, "plan": st.plan, "csm": st.csm,
            "mrr": None if st.mrr != st.mrr else st.mrr,
            "first_event_time": format_ts(st.first_ms) if st.first_ms else None,
            "last_event_time": format_ts(st.last_ms) if st.last_ms else None,
            "churned_time": format_ts(st.churned_ms) if st.churned_ms else None,
            "events": st.events, "applied": dict(st.applied), "partition": st.partition,
            "features": {k: (None if v != v else v) for k, v in zip(names, row)},
            "score": None, "threshold": None, "reasons": [], "model_version": None,
            "open_alert": st.alert.open,
            "alert_history": [{**h, "event_time": format_ts(h["event_ms"])} for h in st.alert.history],
            "rules_fired": {k: format_ts(v) for k, v in st.alert.rules.items()},
        }
        if model is not None:
            score = float(model.predict([row])[0])
            contrib = model.contributions([row])[0]
            body.update(score=round(score, 4), threshold=self.core.policy.alerts.threshold(st.tier, model.thresholds),
                        model_version=model.version,
                        reasons=[r.to_json() for r in top_reasons(row, contrib, names=names)])
        return body


def add_views(app: faust.App, routes: "CustomerRoutes") -> None:
    """The worker web's own pages on the Faust app: the customer view, liveness, readiness, sign-in."""
    core = routes.core

    class CustomerView(faust.web.View):
        """``GET /customers/{id}/``, answered by the worker owning the customer's partition (keys
        are partitioned with the default murmur2 partitioner, as producers do)."""

        async def get(self, request: Any, customer_id: str) -> Any:
            status, body = await routes.route_customer(request, customer_id)
            return self.json(body, status=status)

    class HealthView(faust.web.View):
        """Liveness: the process serves requests and its agent has not died (a crashed agent never
        comes back, so a supervisor should restart the worker)."""

        async def get(self, request: Any) -> Any:
            if not core.health.agent_alive:
                return self.json({"status": "agent stopped", "writer": core.writer}, status=503)
            return self.json({"status": "ok", "writer": core.writer})

    class ReadyView(faust.web.View):
        async def get(self, request: Any) -> Any:
            ready, checks = core.health.evaluate()
            return self.json({"ready": ready, "checks": checks}, status=200 if ready else 503)

    show_login, submit_login, logout = webguard.login_handlers(routes.webauth, "churnwatch worker")

    class LoginView(faust.web.View):
        """The sign-in form (token mode), as on the inbox: the session cookie is valid on both."""

        async def get(self, request: Any) -> Any:
            return await show_login(request)

        async def post(self, request: Any) -> Any:
            return await submit_login(request)

    class LogoutView(faust.web.View):
        async def post(self, request: Any) -> Any:
            return await logout(request)

    app.page("/customers/{customer_id}/")(CustomerView)
    app.page("/health")(HealthView)
    app.page("/ready")(ReadyView)
    app.page("/login")(LoginView)
    app.page("/logout")(LogoutView)
