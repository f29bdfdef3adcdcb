"""The FastAPI receiver from Integify's webhook guide
(shared/provider-docs/integify.txt), with the SQLite insert the guide leaves
as "update your database here" added: a commit before answering, and
deduplication on the event id. Used only as a benchmark comparison.

SQLITE_TUNED=1 adds what the guide does not: WAL with synchronous=FULL, the
same durability smshook gives at a far lower cost per commit. Without it,
the database is opened as the guide's reader would open it, with Python's
sqlite3 defaults (rollback journal, synchronous=FULL)."""

import hashlib
import hmac
import os
import sqlite3

from fastapi import FastAPI, HTTPException, Request

app = FastAPI()
WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET", "whsec_your_secret_here")

db = sqlite3.connect(os.environ.get("DB_PATH", "fastapi-bench.db"), check_same_thread=False)
if os.environ.get("SQLITE_TUNED") == "1":
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
