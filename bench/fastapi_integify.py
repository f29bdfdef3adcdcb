"""The FastAPI receiver from Integify's webhook guide
(shared/provider-docs/integify.txt), with the SQLite insert the guide leaves
as "update your database here" added, at the same durability smshook gives
(WAL, synchronous=FULL, a commit before answering) and deduplication on the
event id. Used only as a benchmark comparison."""

import hashlib
import hmac
import os
import sqlite3

from fastapi import FastAPI, HTTPException, Request

app = FastAPI()
WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET", "whsec_your_secret_here")

db = sqlite3.connect(os.environ.get("DB_PATH", "fastapi-bench.db"), check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT, payload TEXT)")


def verify_signature(payload: bytes, header: str) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(
        WEBHOOK_SECRET.encode(),
        payload,
        hashlib.sha256,
    ).hexdigest()
    return hmac.compare_digest(expected, header)


@app.post("/webhooks/integify")
async def handle_webhook(request: Request):
    payload = await request.body()
    signature = request.headers.get("X-Integify-Signature", "")

    if not verify_signature(payload, signature):
        raise HTTPException(status_code=401, detail="Invalid signature")

    event = await request.json()
    db.execute(
        "INSERT OR IGNORE INTO events (id, type, payload) VALUES (?, ?, ?)",
        (event.get("id"), event.get("type"), payload.decode()),
    )
    db.commit()
    return {"ok": True}
