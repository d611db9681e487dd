"""Drive crashcart's mock LLM with openai-python, unmodified.

Modes:
  flow   a chat completion, a streamed completion with usage, an embedding (the client's
         default base64 encoding), a json_schema response parsed by the client into a
         pydantic model, a forced tool call, and the client's own errors for 404 and 401.
  retry  one chat completion; the Rust test makes the mock answer the first attempt with 429
         and Retry-After, so the client must retry on its own.
  responses  the Responses API through the client's own methods: `responses.create` whole
         and streamed, `responses.parse` into a pydantic model, `responses.stream` to its
         final response, a function call answered with `function_call_output` through
         `previous_response_id`, `responses.retrieve` and `responses.delete`.
  responses-faults  what the client makes of a 429 then a broken generation, and of a
         stream that ends in an error event (the Rust test sets the faults).

Prints one JSON object describing what the client saw; the Rust test checks it and the
mock's own history.
"""

import argparse
import json
from typing import List, Literal

import openai
from pydantic import BaseModel

NOTE = (
    "Prepare the visit. Patient reports chest pain since 3 days. She takes metformin 500 mg "
    "twice daily. Allergic to penicillin. Follow-up booked with Dr. Hopper."
)


class VisitPrep(BaseModel):
    summary: str
    urgency: Literal["routine", "soon", "urgent"]
    medications: List[str]
    needs_interpreter: bool


def flow(client, model):
    out = {}
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": NOTE}])
    out["request_id"] = r._request_id
    lp = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": NOTE}], logprobs=True, top_logprobs=2, max_tokens=10
    )
    content = lp.choices[0].logprobs.content
    out["logprobs"] = {
        "tokens": "".join(t.token for t in content),
        "text": lp.choices[0].message.content,
        "top": len(content[0].top_logprobs),
        "negative": all(t.logprob < 0 for t in content),
    }
    several = client.completions.create(
        model=model, prompt=["Patient reports chest pain since 3 days.", "She takes metformin 500 mg twice daily."], max_tokens=12
    )
    out["several_prompts"] = [{"index": c.index, "text": c.text} for c in several.choices]
    out["chat"] = {
        "content": r.choices[0].message.content,
        "finish_reason": r.choices[0].finish_reason,
        "usage": r.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}),
    }
    parts, usage, finish = [], None, None
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": NOTE}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
        for c in chunk.choices:
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    out["stream"] = {"content": "".join(parts), "chunks": len(parts), "usage": usage, "finish_reason": finish}
    e = client.embeddings.create(model="nomic-embed-text", input=["chest pain", "penicillin allergy"])
    out["embedding"] = {"count": len(e.data), "dim": len(e.data[0].embedding), "first": e.data[0].embedding[:4]}
    parsed = client.chat.completions.parse(
        model=model, messages=[{"role": "user", "content": NOTE}], response_format=VisitPrep
    )
    out["parsed"] = parsed.choices[0].message.parsed.model_dump()
    tools = [{
        "type": "function",
        "function": {
            "name": "book_appointment",
            "parameters": {
                "type": "object",
                "properties": {"patient_id": {"type": "string"}, "start": {"type": "string", "format": "date-time"}},
                "required": ["patient_id", "start"],
            },
        },
    }]
    t = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": NOTE}], tools=tools, tool_choice="required"
    )
    call = t.choices[0].message.tool_calls[0]
    out["tool_call"] = {"name": call.function.name, "arguments": json.loads(call.function.arguments),
                        "finish_reason": t.choices[0].finish_reason}
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        out["not_found"] = None
    except openai.NotFoundError as err:
        out["not_found"] = {"status": err.status_code, "code": err.code, "type": err.type}
    bad = openai.OpenAI(base_url=client.base_url, api_key="sk-wrong-key-000000", max_retries=0)
    try:
        bad.models.list()
        out["auth"] = None
    except openai.AuthenticationError as err:
        out["auth"] = {"status": err.status_code, "code": err.code}
    return out


def retry(client, model):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": NOTE}])
    return {"content": r.choices[0].message.content}


BOOK_TOOL = {
    "type": "function",
    "name": "find_slot",
    "description": "Find a free appointment slot",
    "parameters": {
        "type": "object",
        "properties": {"patient_id": {"type": "string"}},
        "required": ["patient_id"],
    },
}


def responses(client, model):
    out = {}
    r = client.responses.create(model=model, instructions="You prepare clinic visits.", input=NOTE)
    out["whole"] = {
        "id": r.id,
        "status": r.status,
        "text": r.output_text,
        "usage": r.usage.model_dump(include={"input_tokens", "output_tokens", "total_tokens"}),
    }
    events = []
    text = ""
    for e in client.responses.create(model=model, input=NOTE, stream=True):
        events.append(e.type)
        if e.type == "response.output_text.delta":
            text += e.delta
        if e.type == "response.completed":
            out["stream_final"] = e.response.output_text
    out["stream"] = {"events": events, "text": text}
    parsed = client.responses.parse(model=model, input=NOTE, text_format=VisitPrep)
    out["parsed"] = parsed.output_parsed.model_dump()
    with client.responses.stream(model=model, input=NOTE, text_format=VisitPrep) as stream:
        final = stream.get_final_response()
    out["stream_parsed"] = final.output_parsed.model_dump()
    call = client.responses.create(
        model=model, input="Please find_slot for patient CC-SYN-1.", tools=[BOOK_TOOL]
    )
    fc = [item for item in call.output if item.type == "function_call"][0]
    answer = client.responses.create(
        model=model,
        previous_response_id=call.id,
        tools=[BOOK_TOOL],
        input=[
            {
                "type": "function_call_output",
                "call_id": fc.call_id,
                "output": json.dumps({"start": "2026-12-08T09:00:00Z"}),
            }
        ],
    )
    out["tool"] = {
        "name": fc.name,
        "arguments": json.loads(fc.arguments),
        "answer_types": [item.type for item in answer.output],
        "answer_text": answer.output_text,
        "previous": answer.previous_response_id,
    }
    out["retrieved"] = client.responses.retrieve(answer.id).id
    client.responses.delete(answer.id)
    try:
        client.responses.retrieve(answer.id)
        out["after_delete"] = "found"
    except openai.NotFoundError as err:
        out["after_delete"] = err.status_code
    try:
        client.responses.create(model=model, input=NOTE, previous_response_id="resp_unknown")
    except openai.BadRequestError as err:
        out["unknown_previous"] = err.code
    return out


def responses_faults(client, model):
    """A whole response under a 429 then a broken generation; a stream that breaks."""
    out = {}
    try:
        client.responses.create(model=model, input=NOTE)
        out["whole_status"] = 200
    except openai.APIStatusError as err:
        out["whole_status"] = err.status_code
    deltas = 0
    try:
        for e in client.responses.create(model=model, input=NOTE, stream=True):
            if e.type == "response.output_text.delta":
                deltas += 1
            if e.type == "error":
                out["stream_error"] = {"message": e.message, "deltas": deltas}
    except openai.APIError as err:
        out["stream_error"] = {"message": err.message, "deltas": deltas, "raised": True}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["flow", "retry", "responses", "responses-faults"])
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--model", required=True)
    a = p.parse_args()
    client = openai.OpenAI(base_url=a.base_url, api_key=a.api_key, timeout=20)
    modes = {"flow": flow, "retry": retry, "responses": responses, "responses-faults": responses_faults}
    out = modes[a.mode](client, a.model)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
