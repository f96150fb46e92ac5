"""The providers' own Python SDKs against a running Tally's metering proxy (test mode, the
simulated provider): every route, streamed and not, and that each call was charged.

Usage: sdk_check.py BASE_URL ADMIN_API_KEY (a test-mode admin key)
"""
import json
import sys
import time
import urllib.request

import anthropic
import openai

base, admin = sys.argv[1:3]


def api(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data,
                                 headers={"Authorization": f"Bearer {admin}"})
    return json.load(urllib.request.urlopen(req))


for _ in range(100):
    try:
        urllib.request.urlopen(f"{base}/healthz")
        break
    except OSError:
        time.sleep(0.1)
customer = api("/v1/customers", {"external_id": "sdk-check"})["id"]
api(f"/v1/customers/{customer}/grants", {"amount": "5", "reason": "sdk check"})
key = api(f"/v1/customers/{customer}/keys", {"name": "sdk"})["secret"]

a = anthropic.Anthropic(base_url=f"{base}/proxy/anthropic", api_key=key)
r = a.messages.create(model="claude-sonnet-4-5", max_tokens=256,
                      messages=[{"role": "user", "content": "Hello through Tally"}])
assert "simulated" in r.content[0].text and r.usage.output_tokens > 0
with a.messages.stream(model="claude-sonnet-4-5", max_tokens=256,
                       messages=[{"role": "user", "content": "stream"}]) as s:
    assert "simulated" in "".join(s.text_stream)
assert a.messages.count_tokens(model="claude-sonnet-4-5",
                               messages=[{"role": "user", "content": "hi"}]).input_tokens > 0
assert "claude-sonnet-4-5" in [m.id for m in a.models.list()]

o = openai.OpenAI(base_url=f"{base}/proxy/openai/v1", api_key=key)
c = o.chat.completions.create(model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}])
assert c.usage.prompt_tokens > 0
chunks = list(o.chat.completions.create(model="gpt-5-mini", stream=True,
                                        messages=[{"role": "user", "content": "hi"}]))
# Tally asked for the usage chunk; the client did not, so it never sees it.
assert chunks and not any(ch.usage for ch in chunks)
assert o.responses.create(model="gpt-5-mini", input="hello").usage.input_tokens > 0
with o.responses.stream(model="gpt-5-mini", input="hello") as s:
    assert s.get_final_response().usage.output_tokens > 0
assert "gpt-5-mini" in [m.id for m in o.models.list()]

try:
    anthropic.Anthropic(base_url=f"{base}/proxy/anthropic", api_key="ck_test_wrong").messages.create(
        model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    raise SystemExit("a wrong key was accepted")
except anthropic.AuthenticationError:
    pass

# Six charged calls (count_tokens and model lists are free); streams settle just after.
for _ in range(50):
    events = api(f"/v1/usage?customer={customer}&limit=100")["data"]
    if len(events) >= 6:
        break
    time.sleep(0.1)
assert len(events) == 6, events
assert all(e["outcome"] == "succeeded" and e["cost"] != "0.000000000" for e in events), events
print("the Anthropic and OpenAI Python SDKs work through the proxy; 6 calls charged")
