"""Drive crashcart's mock LLM with ollama-python, unmodified, on Ollama's native API.

A model list, a streamed chat, a chat with a JSON Schema `format`, a generate with
`num_predict`, the models loaded (`ps`) as requests' own `keep_alive` leave them, an
embedding, and the client's error for an unknown model. Prints one JSON
object describing what the client saw.
"""

import argparse
import json

import ollama

NOTE = "Patient reports chest pain since 3 days. She takes metformin 500 mg twice daily."


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--model", required=True)
    a = p.parse_args()
    client = ollama.Client(host=a.host)
    out = {"models": [m.model for m in client.list().models]}
    parts, last = [], None
    for chunk in client.chat(model=a.model, messages=[{"role": "user", "content": NOTE}], stream=True):
        parts.append(chunk.message.content)
        last = chunk
    out["chat"] = {"content": "".join(parts), "done": last.done, "done_reason": last.done_reason,
                   "eval_count": last.eval_count, "prompt_eval_count": last.prompt_eval_count,
                   "total_duration": last.total_duration}
    schema = {"type": "object", "properties": {"summary": {"type": "string"}, "priority": {"type": "integer"}},
              "required": ["summary", "priority"]}
    r = client.chat(model=a.model, messages=[{"role": "user", "content": NOTE}], format=schema)
    out["structured"] = json.loads(r.message.content)
    g = client.generate(model=a.model, prompt=NOTE, options={"num_predict": 3})
    out["generate"] = {"response": g.response, "done_reason": g.done_reason, "eval_count": g.eval_count,
                       "prompt_eval_count": g.prompt_eval_count, "context": len(g.context or [])}
    out["ps"] = [m.model for m in client.ps().models]
    # A request's own keep_alive: 0 unloads the model after it, -1 keeps it loaded.
    client.chat(model="meditron:7b", messages=[{"role": "user", "content": "hi"}], keep_alive=-1)
    forever = [m for m in client.ps().models if m.model == "meditron:7b"]
    out["kept"] = forever[0].expires_at.year if forever else None
    client.chat(model="meditron:7b", messages=[{"role": "user", "content": "hi"}], keep_alive=0)
    out["unloaded"] = "meditron:7b" not in [m.model for m in client.ps().models]
    client.chat(model="meditron:7b", messages=[{"role": "user", "content": "hi"}], keep_alive="10m")
    ten = [m for m in client.ps().models if m.model == "meditron:7b"]
    out["ten_minutes"] = ten[0].expires_at.isoformat() if ten else None
    try:
        client.chat(model="meditron:7b", messages=[{"role": "user", "content": "hi"}], keep_alive="soon")
        out["bad_keep_alive"] = None
    except ollama.ResponseError as err:
        out["bad_keep_alive"] = {"status": err.status_code, "error": err.error}
    e = client.embed(model="nomic-embed-text", input=["chest pain"])
    out["embed"] = {"count": len(e.embeddings), "dim": len(e.embeddings[0])}
    try:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        out["missing"] = None
    except ollama.ResponseError as err:
        out["missing"] = {"status": err.status_code, "error": err.error}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
