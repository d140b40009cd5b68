"""A small FastAPI application, run by shoal as the ingress of examples/seed/serve.yaml.

shoal starts it as `python3 -m uvicorn my_module:app --host 127.0.0.1 --port $PORT`
in this directory.
"""

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {
        "message": "hello from my-app",
        "replica_id": os.environ.get("SHOAL_REPLICA_ID", ""),
        "deployment": os.environ.get("SHOAL_DEPLOYMENT", ""),
    }


@app.get("/healthz")
def healthz():
    return {"ok": True}
