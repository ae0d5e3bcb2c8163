"""scripts/api-contract.sh's schemathesis hooks: the agent's session.

Every agent call but connect carries `X-Arca-Agent-Session`, the id the latest connect
returned. A generated value is never a live session, so the calls would all stop at
409 `superseded`; the live one is put in instead, so the handlers behind it are reached.
A case that leaves the header out keeps it out (the 400 `session_required` path).
Connects made during the run start a new session: it is picked up from their answer.
The poll is left with the generated value: with a live session it waits 20 s for a job.
"""

import os

import schemathesis

SESSION_HEADER = "X-Arca-Agent-Session"
_session = {"id": os.environ.get("ARCA_AGENT_SESSION", "")}


def _path(case):
    return case.operation.path


@schemathesis.hook
def before_call(context, case, kwargs):
    path = _path(case)
    if not path.startswith("/v1/agent/") or path in ("/v1/agent/connect", "/v1/agent/poll"):
        return
    if not _session["id"] or not case.headers:
        return
    for name in list(case.headers):
        if name.lower() == SESSION_HEADER.lower():
            case.headers[name] = _session["id"]


@schemathesis.hook
def after_call(context, case, response):
    if _path(case) != "/v1/agent/connect" or response.status_code != 200:
        return
    try:
        _session["id"] = response.json()["sessionId"]
    except (ValueError, KeyError, TypeError):
        pass
