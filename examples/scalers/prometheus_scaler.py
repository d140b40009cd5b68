#!/usr/bin/env python3
"""Scale a shoal deployment on a PromQL query, through shoal's scale webhook.

The same policy as `shoal scaler prometheus`, in a page of Python with `requests`
(Debian: python3-requests):

    replicas = ceil(value / per_replica), clamped to [min, max],
    at most max_step at a time, no scale-up within scale_up_cooldown and no
    scale-down within scale_down_cooldown of the last change (a target changed
    outside the scaler, read before every decision, counts too); while the query fails
    the target is kept, and after fallback_after seconds of failures it becomes
    fallback_replicas.

    export SHOAL_TOKEN=$(shoal token my-app)
    python3 prometheus_scaler.py --app my-app --deployment my-deployment \
        --query 'sum(shoal_proxy_ongoing_requests{application="my-app"})' \
        --per-replica 10 --min 1 --max 20 --dry-run
"""
import argparse
import logging
import math
import os
import sys
import time

import requests

log = logging.getLogger("prometheus_scaler")


def query(prom_url, promql, timeout):
    """Return the query's one number, or None when it fails, has no data or is NaN."""
    try:
        r = requests.get(prom_url.rstrip("/") + "/api/v1/query", params={"query": promql}, timeout=timeout)
        body = r.json()
    except (requests.RequestException, ValueError) as e:
        log.warning("query failed: %s", e)
        return None
    if body.get("status") != "success":
        log.warning("query rejected: %s", body.get("error"))
        return None
    data = body["data"]
    if data["resultType"] == "scalar":
        sample = data["result"]
    elif data["resultType"] == "vector" and len(data["result"]) == 1:
        sample = data["result"][0]["value"]
    else:
        log.warning("query returned %d series of type %s; want exactly one number",
                    len(data["result"]), data["resultType"])
        return None
    value = float(sample[1])
    return None if math.isnan(value) or math.isinf(value) else value


class Policy:
    """The decision, with the clock passed in (now) so it can be tried by hand."""

    def __init__(self, a):
        self.a = a
        self.target = None        # last target set (None: unknown)
        self.last_change = None   # when the target last changed (by this scaler or seen changed)
        self.failing_since = None

    def observe(self, current, now):
        """Take in the target read from shoal; one changed outside the scaler counts as a change."""
        if self.target is not None and current != self.target:
            log.info("target %d set outside the scaler (it was %d)", current, self.target)
            self.last_change = now
        self.target = current

    def decide(self, value, now):
        """Return (new target or None, reason)."""
        a = self.a
        if value is None:
            self.failing_since = self.failing_since or now
            failing = now - self.failing_since
            if a.fallback_replicas is not None and failing >= a.fallback_after:
                if self.target != a.fallback_replicas:
                    return self._set(a.fallback_replicas, now), f"query failing for {failing:.0f}s: fallback"
                return None, "fallback in force"
            return None, f"query failing for {failing:.0f}s; keeping {self.target}"
        self.failing_since = None
        desired = min(max(math.ceil(max(value, 0) / a.per_replica), a.min), a.max)
        why = f"value {value:g} / per_replica {a.per_replica:g} -> {desired}"
        cur = self.target
        if cur is None:
            return self._set(desired, now), why + "; current target unknown"
        since = math.inf if self.last_change is None else now - self.last_change
        if desired > cur:
            if cur > 0 and since < a.scale_up_cooldown:
                return None, why + "; scale-up held by cooldown"
            step = desired if not a.max_step else min(desired, cur + a.max_step)
            return self._set(step, now), why + f"; up {cur} -> {step}"
        if desired < cur:
            if since < a.scale_down_cooldown:
                return None, why + "; scale-down held by cooldown"
            step = desired if not a.max_step else max(desired, cur - a.max_step)
            return self._set(step, now), why + f"; down {cur} -> {step}"
        return None, why + f"; stays {cur}"

    def _set(self, n, now):
        self.target, self.last_change = n, now
        return n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shoal", default=os.environ.get("SHOAL_ADDRESS", "http://127.0.0.1:8000"))
    p.add_argument("--cacert", default=os.environ.get("SHOAL_CACERT", ""),
                   help="CA file to trust for an https:// --shoal, e.g. ca.crt of `shoal start --self-signed`")
    p.add_argument("--prometheus", default="http://127.0.0.1:9090")
    p.add_argument("--app", required=True)
    p.add_argument("--deployment", required=True)
    p.add_argument("--query", required=True)
    p.add_argument("--per-replica", type=float, required=True)
    p.add_argument("--min", type=int, default=1)
    p.add_argument("--max", type=int, required=True)
    p.add_argument("--interval", type=float, default=15, help="seconds")
    p.add_argument("--scale-up-cooldown", type=float, default=0, help="seconds")
    p.add_argument("--scale-down-cooldown", type=float, default=300, help="seconds")
    p.add_argument("--max-step", type=int, default=0, help="0: no limit")
    p.add_argument("--fallback-after", type=float, default=120, help="seconds")
    p.add_argument("--fallback-replicas", type=int, default=None)
    p.add_argument("--dry-run", action="store_true", help="decide and log, call nothing")
    p.add_argument("--once", action="store_true", help="decide once and exit")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    token = os.environ.get("SHOAL_TOKEN", "")
    if not token and not a.dry_run:
        sys.exit("set SHOAL_TOKEN (from `shoal token APP`)")
    url = f"{a.shoal.rstrip('/')}/api/v1/applications/{a.app}/deployments/{a.deployment}/scale"
    headers = {"Authorization": f"Bearer {token}"}
    verify = a.cacert or True  # requests: a CA file, or True for the system's trust store
    policy = Policy(a)

    while True:
        now = time.monotonic()
        # The target is read before every decision (a dry run: at start only), so one
        # changed behind the scaler's back (by hand, by a redeploy) is corrected; the
        # change restarts the cooldowns, as the scaler's own would.
        if token and (policy.target is None or not a.dry_run):
            try:
                r = requests.get(url, headers=headers, timeout=10, verify=verify)
                r.raise_for_status()
                policy.observe(r.json()["target_num_replicas"], now)
            except (requests.RequestException, KeyError, ValueError) as e:
                log.warning("cannot read the current target, deciding from the last known (%s): %s",
                            policy.target, e)
        value = query(a.prometheus, a.query, timeout=min(a.interval, 10))
        before = (policy.target, policy.last_change)
        target, why = policy.decide(value, now)
        log.info("value=%s target=%s: %s", value, policy.target, why)
        if target is not None and not a.dry_run:
            try:
                r = requests.post(url, json={"target_num_replicas": target}, headers=headers, timeout=10,
                                  verify=verify)
                r.raise_for_status()
                log.info("set %s/%s to %d", a.app, a.deployment, target)
            except requests.RequestException as e:
                log.error("webhook failed, trying again next time: %s", e)
                policy.target, policy.last_change = before
        elif target is not None:
            log.info("dry run: would set %s/%s to %d", a.app, a.deployment, target)
        if a.once:
            return
        time.sleep(max(0.0, a.interval - (time.monotonic() - now)))


if __name__ == "__main__":
    main()
