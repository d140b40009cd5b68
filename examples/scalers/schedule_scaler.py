#!/usr/bin/env python3
"""Scale a shoal deployment by time of day, through shoal's scale webhook.

The same idea as `shoal scaler schedule`, in a page of Python with `requests`
(Debian: python3-requests): business hours, an evening peak, off-peak the rest of the
time, and one-off windows for events. Windows win over profiles, and a later profile
over an earlier one. Edit PROFILES and WINDOWS below.

    export SHOAL_TOKEN=$(shoal token my-app)
    python3 schedule_scaler.py --app my-app --deployment my-deployment --print 10
    python3 schedule_scaler.py --app my-app --deployment my-deployment --dry-run

This sketch tests wall-clock membership each minute, so in the hour repeated when clocks
go back a profile that ended inside it applies again; `shoal scaler schedule` takes a
repeated time as its first occurrence instead (see its --help).
"""
import argparse
import logging
import os
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import requests

TIMEZONE = ZoneInfo("Europe/Berlin")
DEFAULT = 1  # off-peak
# (name, weekdays (0 = Monday), from "HH:MM", to "HH:MM", replicas); to <= from crosses midnight
PROFILES = [
    ("business-hours", range(0, 5), "09:00", "18:00", 4),
    ("evening-peak", range(0, 7), "18:00", "22:00", 8),
]
# (name, from, to, replicas)
WINDOWS = [
    ("launch", datetime(2026, 12, 1, 10, 0, tzinfo=TIMEZONE), datetime(2026, 12, 1, 14, 0, tzinfo=TIMEZONE), 20),
]

log = logging.getLogger("schedule_scaler")


def minutes(hhmm):
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def desired(now):
    """Return (replicas, reason) at the aware datetime now."""
    for name, start, end, n in reversed(WINDOWS):
        if start <= now < end:
            return n, f"window {name}"
    local = now.astimezone(TIMEZONE)
    m = local.hour * 60 + local.minute
    for name, days, frm, to, n in reversed(PROFILES):
        f, t = minutes(frm), minutes(to)
        if f < t and local.weekday() in days and f <= m < t:
            return n, f"profile {name}"
        # crossing midnight: the evening part today, or the morning part of a profile that started yesterday
        if t <= f and ((local.weekday() in days and m >= f) or ((local.weekday() - 1) % 7 in days and m < t)):
            return n, f"profile {name}"
    return DEFAULT, "default"


def next_changes(now, count):
    """The next count changes, found by stepping minute by minute (fine for a sketch)."""
    out, prev = [], desired(now)[0]
    t = now.replace(second=0, microsecond=0)
    for _ in range(60 * 24 * 400):
        t += timedelta(minutes=1)
        n, why = desired(t)
        if n != prev:
            out.append((t, prev, n, why))
            prev = n
            if len(out) == count:
                break
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shoal", default=os.environ.get("SHOAL_ADDRESS", "http://127.0.0.1:8000"))
    p.add_argument("--cacert", default=os.environ.get("SHOAL_CACERT", ""),
                   help="CA file to trust for an https:// --shoal, e.g. ca.crt of `shoal start --self-signed`")
    p.add_argument("--app", required=True)
    p.add_argument("--deployment", required=True)
    p.add_argument("--dry-run", action="store_true", help="decide and log, call nothing")
    p.add_argument("--print", type=int, metavar="N", help="print the next N changes and exit")
    p.add_argument("--once", action="store_true", help="set the current target and exit")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    now = datetime.now(TIMEZONE)
    if a.print:
        n, why = desired(now)
        print(f"now ({now:%a %Y-%m-%d %H:%M %Z}): {n} ({why})")
        for t, old, new, why in next_changes(now, a.print):
            print(f"{t:%a %Y-%m-%d %H:%M %Z}  {old} -> {new}  {why}")
        return

    token = os.environ.get("SHOAL_TOKEN", "")
    if not token and not a.dry_run:
        sys.exit("set SHOAL_TOKEN (from `shoal token APP`)")
    url = f"{a.shoal.rstrip('/')}/api/v1/applications/{a.app}/deployments/{a.deployment}/scale"
    applied = None
    while True:
        n, why = desired(datetime.now(TIMEZONE))
        # The target is read every time (but not in a dry run), so one changed outside
        # the scaler (by hand, by a redeploy) is set back within 30s.
        if token and not a.dry_run and applied == n:
            try:
                r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10,
                                 verify=a.cacert or True)
                r.raise_for_status()
                cur = r.json()["target_num_replicas"]
                if cur != n:
                    log.warning("target %d set outside the scaler; setting %d", cur, n)
                    applied = None
            except (requests.RequestException, KeyError, ValueError) as e:
                log.warning("cannot read the current target: %s", e)
        if n != applied:
            if a.dry_run:
                log.info("dry run: would set %s/%s to %d (%s)", a.app, a.deployment, n, why)
                applied = n
            else:
                try:
                    r = requests.post(url, json={"target_num_replicas": n},
                                      headers={"Authorization": f"Bearer {token}"}, timeout=10,
                                      verify=a.cacert or True)
                    r.raise_for_status()
                    log.info("set %s/%s to %d (%s)", a.app, a.deployment, n, why)
                    applied = n
                except requests.RequestException as e:
                    log.error("webhook failed, trying again: %s", e)
        if a.once:
            return
        time.sleep(30)


if __name__ == "__main__":
    main()
