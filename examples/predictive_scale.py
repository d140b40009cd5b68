#!/usr/bin/env python3
"""Predictive scaling by time of day, through shoal's scale webhook.

`predictive_scale` is the example of Ray Serve's external scaling docs: it picks a
replica count from the hour of the day and POSTs it to
/api/v1/applications/{app}/deployments/{deployment}/scale on shoal's proxy port (8000,
Ray's serve endpoint), returning True when shoal accepted it. Run it against the seed
example (examples/seed), whose application has external_scaler_enabled: true:

    PATH=/usr/bin:$PATH bin/shoal start examples/seed/serve.yaml --state-dir .shoal-seed &
    python3 examples/predictive_scale.py "$(bin/shoal token my-app --state-dir .shoal-seed)"

It prints True or False and exits 0 or 1. The token comes from the first argument, else
from $SHOAL_TOKEN (the application's token, or the admin token). SERVE_ENDPOINT
overrides the endpoint (default Ray's http://localhost:8000), e.g. when shoal's proxy
listens elsewhere: SERVE_ENDPOINT=http://127.0.0.1:8001. The hour is the local one, so
TZ changes it. Needs requests (Debian: python3-requests).
"""
import os
import sys
from datetime import datetime

import requests


def predictive_scale(
    application_name: str,
    deployment_name: str,
    auth_token: str,
    serve_endpoint: str = "http://localhost:8000",
) -> bool:
    """Set the deployment's replicas for the current hour; True if shoal accepted it.

    The function of Ray Serve's external scaling docs (Apache-2.0), in its logic, its
    signature and its request: nothing in it is specific to shoal.
    """
    hour = datetime.now().hour

    # A daily profile learned from past traffic.
    if 9 <= hour < 17:  # working hours
        target_replicas = 10
    elif 17 <= hour < 22:  # the evening peak
        target_replicas = 15
    else:  # the night
        target_replicas = 3

    url = (
        f"{serve_endpoint}/api/v1/applications/{application_name}"
        f"/deployments/{deployment_name}/scale"
    )
    headers = {
        "Authorization": f"Bearer {auth_token}",
        "Content-Type": "application/json",
    }
    response = requests.post(url, headers=headers, json={"target_num_replicas": target_replicas})
    return response.status_code == 200


def main() -> int:
    token = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SHOAL_TOKEN", "")
    if not token:
        print("usage: predictive_scale.py TOKEN (or set SHOAL_TOKEN)", file=sys.stderr)
        return 2
    endpoint = os.environ.get("SERVE_ENDPOINT", "http://localhost:8000")
    ok = predictive_scale("my-app", "my-deployment", token, endpoint)
    print(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
