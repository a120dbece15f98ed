#!/usr/bin/env python3
# Wazuh integratord → Mitigation Manager: posts one Wazuh alert to POST /api/alert with an ingest
# token. integratord runs it once per alert as
#     custom-mitigation-manager <alert file> <api key> <hook url> [<options file>] [debug]
# (the <integration> block of ossec.conf gives api_key and hook_url; see integrations/README.md).
#
# It must never hold Wazuh up: transient failures (connection errors, timeouts, 408, 429, 5xx) are
# retried with exponential backoff only within a bounded total time, a permanent refusal (other
# 4xx) is not retried, and it always exits 0; whatever went wrong is logged to stderr and, when
# writable, to the integrations log. Python 3 standard library only: Wazuh's bundled interpreter
# has nothing else.
import json
import os
import random
import ssl
import sys
import time
import urllib.error
import urllib.request

NAME = "custom-mitigation-manager"
# Total time one alert may take, retries included; integratord runs integrations one after another.
DEFAULT_BUDGET_S = 20.0
MAX_ATTEMPT_S = 10.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
LOG_FILE = os.environ.get("MM_INTEGRATION_LOG", "/var/ossec/logs/integrations.log")


def log(level, message, **fields):
    line = json.dumps(
        {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level,
         "integration": NAME, "message": message, **fields}
    )
    print(line, file=sys.stderr, flush=True)
    try:
        with open(LOG_FILE, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass  # no log file here (not on a Wazuh manager): stderr has it


def read_options(args):
    """The JSON of ossec.conf's <options>, which integratord hands over as a file path."""
    for arg in args:
        if arg.endswith("options"):
            try:
                with open(arg, encoding="utf-8") as f:
                    options = json.load(f)
                return options if isinstance(options, dict) else {}
            except (OSError, ValueError) as err:
                log("warn", "options file unreadable; using defaults", error=str(err))
    return {}


def transient(status):
    return status in (408, 429) or status >= 500


def post(url, body, token, timeout, context):
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "content-type": "application/json",
            "authorization": f"Bearer {token}",
            "user-agent": f"wazuh-{NAME}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as res:
            return res.status, res.read(2048).decode("utf-8", "replace"), None
    except urllib.error.HTTPError as err:
        return err.code, err.read(2048).decode("utf-8", "replace"), err.headers.get("retry-after")


def deliver(alert_file, token, url, options):
    budget = float(options.get("timeout_seconds", DEFAULT_BUDGET_S))
    deadline = time.monotonic() + max(1.0, min(budget, 300.0))
    try:
        with open(alert_file, "rb") as f:
            body = f.read()
        alert = json.loads(body)
    except (OSError, ValueError) as err:
        log("error", "alert file unreadable; nothing sent", file=alert_file, error=str(err))
        return False
    alert_id = alert.get("id") if isinstance(alert, dict) else None
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=options.get("ca_file"))
    backoff = FIRST_BACKOFF_S
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            status, text, retry_after = post(url, body, token, min(MAX_ATTEMPT_S, remaining), context)
            if 200 <= status < 300:
                log("info", "alert delivered", alert=alert_id, status=status, attempt=attempt)
                return True
            if not transient(status):
                log("error", "alert refused; not retried", alert=alert_id, status=status,
                    answer=text[:500])
                return False
            why = f"HTTP {status}"
        except (urllib.error.URLError, OSError, ValueError) as err:
            why, retry_after = str(getattr(err, "reason", err)), None
        wait = backoff * (0.5 + random.random() / 2)
        if retry_after and retry_after.isdigit():
            wait = max(wait, float(retry_after))
        if time.monotonic() + wait >= deadline:
            log("error", "alert not delivered; giving up", alert=alert_id, attempts=attempt,
                error=why, budget_seconds=budget)
            return False
        log("warn", "alert not delivered yet; retrying", alert=alert_id, attempt=attempt,
            error=why, retry_in_seconds=round(wait, 2))
        time.sleep(wait)
        backoff = min(backoff * 2, MAX_BACKOFF_S)


def main(args):
    if len(args) < 4:
        log("error", f"usage: {NAME} <alert file> <api key> <hook url> [<options file>]")
        return 0
    _, alert_file, token, url = args[:4]
    if not url.startswith(("http://", "https://")):
        log("error", "hook_url must be http(s)://…/api/alert", hook_url=url)
        return 0
    try:
        deliver(alert_file, token, url, read_options(args[4:]))
    except Exception as err:  # noqa: BLE001 - whatever happens, Wazuh is not held up by it
        log("error", "integration failed", error=repr(err))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
